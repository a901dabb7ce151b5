"""Workers forked from their environment's zygote: cold starts through the gateway, and the
sandbox between the workers of one zygote (which sees every version's folder of its data
directory, where each worker must see only its own).

The sandboxed tests need a working ``bwrap`` and nested user namespaces; without them they are
skipped (the plain variant runs everywhere).
"""

from __future__ import annotations

import os
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from algora.testing import write_model
from algora.workers.sandbox import sandbox_status

from ..conftest import HELLO_MODEL, InProcess, in_process

SPY_MODEL = textwrap.dedent(
    """
    import os, signal


    def attempt(action):
        try:
            return ["ok", action()]
        except Exception as exc:
            return ["denied", type(exc).__name__]


    def own():
        # This worker and its parent, the init of its own PID namespace, as /proc numbers them.
        me = os.readlink("/proc/self")
        with open("/proc/self/status") as f:
            parent = next(l.split()[1] for l in f if l.startswith("PPid:"))
        return {me, parent}


    def signal_others():
        hit = []
        for name in os.listdir("/proc"):
            if not name.isdigit() or name in own():
                continue
            try:
                fd = os.open(f"/proc/{name}", os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                continue
            try:
                signal.pidfd_send_signal(fd, signal.SIGTERM)
                hit.append(name)
            except OSError:
                pass
            finally:
                os.close(fd)
        return hit


    def peek_others():
        seen = []
        for name in os.listdir("/proc"):
            if not name.isdigit() or name in own():
                continue
            for what in ("environ", "mem", "fd/0", "fd/1", "fd/3", "root/."):
                path = f"/proc/{name}/{what}"
                try:
                    if what.startswith("fd/") or what == "root/.":
                        os.stat(path)
                    else:
                        open(path, "rb").read(1)
                    seen.append(path)
                except OSError:
                    pass
        return seen


    def apply(input: dict) -> dict:
        out = {"pid": os.getpid()}
        for path in input.get("read", []):
            out[path] = attempt(lambda: sorted(os.listdir(path)))
        if input.get("signal"):
            out["signalled"] = signal_others()
        if input.get("peek"):
            out["peeked"] = peek_others()
        if input.get("crash"):
            os.kill(os.getpid(), signal.SIGSEGV)
        return out
    """
)


def zygote_pids(data_dir: Path) -> list[int]:
    """The zygotes serving ``data_dir`` as the host sees them (not their forked workers, which
    share their command line)."""
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            status = (entry / "status").read_text()
        except OSError:
            continue
        ours = b"--sources" in argv and str(data_dir / "sources").encode() in argv
        if ours and not argv[0].endswith(b"bwrap"):
            parent = next(line for line in status.splitlines() if line.startswith("PPid:"))
            found[int(entry.name)] = int(parent.split()[1])
    return sorted(pid for pid, parent in found.items() if parent not in found)


def call(gateway: InProcess, name: str, value: Any) -> Any:
    return gateway.http.post(f"/v1/algo/admin/{name}", json=value, headers=gateway.auth)


@pytest.fixture(scope="module", params=["sandboxed", "plain"])
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcess]:
    sandboxed = request.param == "sandboxed"
    if sandboxed and not sandbox_status().available:
        pytest.skip(f"no sandbox here: {sandbox_status().reason}")
    data_dir = tmp_path_factory.mktemp("zygote-data")
    root = tmp_path_factory.mktemp("models")
    settings = {"sandbox": "required" if sandboxed else "off", "pool_idle_seconds": 1.0}
    with in_process(data_dir, default_call_timeout=20, **settings) as gateway:
        for name, code in [("spy", SPY_MODEL), ("other", SPY_MODEL), ("hello", HELLO_MODEL)]:
            gateway.client.publish(write_model(root / name, name, code))
        yield gateway


@pytest.fixture
def sandboxed(request: pytest.FixtureRequest) -> bool:
    return bool(request.node.callspec.params["gateway"] == "sandboxed")


def source_of(gateway: InProcess, name: str) -> Path:
    version = gateway.client.version(f"admin/{name}", "1.0.0")
    return gateway.data_dir.resolve() / "sources" / version["content_hash"]


def test_a_cold_start_forks_from_the_warm_zygote(gateway: InProcess) -> None:
    assert call(gateway, "hello", "you").json()["result"] == "Hello you"
    zygotes = zygote_pids(gateway.data_dir.resolve())
    assert len(zygotes) == 1, zygotes  # one environment: one zygote, started by the publishes
    time.sleep(2.0)  # past the idle timeout (1 s) and the reaper's tick: no worker left
    started = time.monotonic()
    assert call(gateway, "hello", "again").json()["result"] == "Hello again"
    assert time.monotonic() - started < 20
    assert zygote_pids(gateway.data_dir.resolve()) == zygotes


def test_a_worker_sees_no_other_version_of_its_zygote(gateway: InProcess, sandboxed: bool) -> None:
    if not sandboxed:
        pytest.skip("without the sandbox, file-system isolation is not enforced")
    own, other = source_of(gateway, "spy"), source_of(gateway, "other")
    assert other.is_dir()
    result = call(gateway, "spy", {"read": [str(other), str(own.parent)]}).json()["result"]
    assert result[str(other)][0] == "denied", result
    assert result[str(own.parent)] == ["ok", [own.name]], result


def test_a_worker_cannot_signal_or_peek_into_the_zygote_or_its_siblings(
    gateway: InProcess, sandboxed: bool
) -> None:
    if not sandboxed:
        pytest.skip("without the sandbox, workers are processes of the same user")
    zygotes = zygote_pids(gateway.data_dir.resolve())
    assert call(gateway, "other", {}).status_code == 200  # a sibling, alive
    result = call(gateway, "spy", {"signal": True, "peek": True}).json()["result"]
    assert result["signalled"] == [], result
    assert result["peeked"] == [], result
    assert zygote_pids(gateway.data_dir.resolve()) == zygotes
    assert call(gateway, "other", {}).status_code == 200


def test_a_crashing_model_leaves_the_zygote_and_its_siblings_serving(gateway: InProcess) -> None:
    zygotes = zygote_pids(gateway.data_dir.resolve())
    before = call(gateway, "other", {}).json()["result"]["pid"]
    crashed = call(gateway, "spy", {"crash": True})
    assert crashed.status_code == 503, crashed.text
    assert crashed.json()["error"]["code"] == "worker_died"
    assert call(gateway, "other", {}).json()["result"]["pid"] == before
    assert call(gateway, "spy", {}).status_code == 200  # forked again
    assert zygote_pids(gateway.data_dir.resolve()) == zygotes


def test_the_zygote_stops_with_the_gateway(tmp_path_factory: pytest.TempPathFactory) -> None:
    # A short data directory: the gateway's sockets must fit in it (else they go under /tmp,
    # which a zygote cannot show its workers, and workers start plainly).
    data_dir = tmp_path_factory.mktemp("z")
    with in_process(data_dir, sandbox="off") as gateway:
        folder = tmp_path_factory.mktemp("m") / "hello"
        gateway.client.publish(write_model(folder, "hello", HELLO_MODEL))
        assert call(gateway, "hello", "x").status_code == 200
        zygotes = zygote_pids(data_dir.resolve())
        assert len(zygotes) == 1
    deadline = time.monotonic() + 10
    while zygote_pids(data_dir.resolve()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert zygote_pids(data_dir.resolve()) == []
    with pytest.raises(ProcessLookupError):
        os.kill(zygotes[0], 0)
