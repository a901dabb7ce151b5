"""Workers run with least privilege: the bubblewrap sandbox and the memory and CPU limits.

The sandbox tests need a working ``bwrap``: without one they are skipped, except in CI, where
its absence is a failure. The limits hold without the sandbox too, and are tested both ways.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from algora.errors import BuildFailed, Unavailable, WorkerDied
from algora.platform import Platform
from algora.settings import Settings
from algora.testing import write_model
from algora.workers.local import LocalBackend
from algora.workers.pool import Pool
from algora.workers.sandbox import sandbox_notice, sandbox_status, use_sandbox
from algora.workers.spec import CallRequest

from ..conftest import HELLO_MODEL, InProcess, in_process
from ..helpers import worker_spec

MIB = 1 << 20

SPY_MODEL = textwrap.dedent(
    """
    import os
    import socket


    def attempt(action):
        try:
            action()
        except OSError as exc:
            return type(exc).__name__
        return "ok"


    def read(path):
        with open(path, "rb") as f:
            f.read(1)


    def connect(port):
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass


    def write_tmp(name):
        with open(os.path.join("/tmp", name), "w") as f:
            f.write("mine")


    def apply(input: dict) -> dict:
        out = {}
        for path in input.get("read", []):
            out[path] = attempt(lambda: read(path))
        for path in input.get("list", []):
            out[path] = attempt(lambda: os.listdir(path))
        if "connect" in input:
            out["connect"] = attempt(lambda: connect(input["connect"]))
        if "write_tmp" in input:
            out["write_tmp"] = attempt(lambda: write_tmp(input["write_tmp"]))
        if "tmp_has" in input:
            out["tmp_has"] = os.path.exists(os.path.join("/tmp", input["tmp_has"]))
        if input.get("home"):
            out["home"] = attempt(lambda: open(os.path.join(os.environ["HOME"], "f"), "w").close())
            out["tmpdir"] = os.environ.get("TMPDIR")
        return out
    """
)

HOG_MODEL = textwrap.dedent(
    """
    import time


    def apply(input: str) -> str:
        if input == "alloc":
            return str(len(bytearray(1 << 30)))
        if input == "spin":
            while True:
                pass
        if input.startswith("busy "):
            end = time.process_time() + float(input.split()[1])
            while time.process_time() < end:
                pass
        return "ok"
    """
)


def require_bwrap() -> None:
    status = sandbox_status()
    if status.available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the sandbox tests: {status.reason}")
    pytest.skip(f"no working bubblewrap here: {status.reason}")


def req(value: Any, timeout: float = 20.0) -> CallRequest:
    return CallRequest("r", "json", json.dumps(value).encode(), timeout)


async def answer(pool: Pool, value: Any) -> Any:
    result = await pool.call(req(value))
    return result.payload.decode() if result.content_type == "text" else json.loads(result.payload)


# -- through the gateway: the manifest's grants and limits reach the workers ------------------


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    require_bwrap()
    data_dir = tmp_path_factory.mktemp("algora-data")
    root = tmp_path_factory.mktemp("models")
    with in_process(data_dir, default_call_timeout=20) as gateway:
        network = "\n[serving]\nnetwork = true\n"
        limits = "\n[serving]\nmemory_mb = 64\ncpu_seconds = 1\n"
        for name, code, extra in [
            ("spy", SPY_MODEL, ""),
            ("netok", SPY_MODEL, network),
            ("hog", HOG_MODEL, limits),
            ("hello", HELLO_MODEL, ""),
        ]:
            gateway.client.publish(write_model(root / name, name, code, extra_manifest=extra))
        yield gateway


def call(gateway: InProcess, name: str, value: Any) -> Any:
    return gateway.http.post(
        f"/v1/algo/admin/{name}",
        content=json.dumps(value).encode(),
        headers={**gateway.auth, "Content-Type": "application/json"},
    )


def test_a_model_sees_nothing_of_the_data_directory(sandboxed: InProcess) -> None:
    data = sandboxed.data_dir.resolve()
    sources = sorted(str(p) for p in (data / "sources").glob("*/model.py"))
    assert len(sources) == 4  # every published version's code, the spy's own among them
    secrets = [str(data / "registry.db"), str(data / "admin.key"), *sources]
    hidden = [str(data / name) for name in ("blobs", "logs", "staging")]
    response = call(sandboxed, "spy", {"read": secrets, "list": hidden})
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    # Only the spy's own model.py is there; nothing else of the data directory is.
    own = [p for p in sources if 'name = "spy"' in Path(p).with_name("algora.toml").read_text()]
    assert [p for p in secrets if result[p] == "ok"] == own
    assert {result[p] for p in secrets if result[p] != "ok"} == {"FileNotFoundError"}
    assert {result[p] for p in hidden} == {"FileNotFoundError"}
    home = call(sandboxed, "spy", {"home": True}).json()["result"]
    assert home == {"home": "ok", "tmpdir": None}


def test_no_network_unless_granted(sandboxed: InProcess) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        denied = call(sandboxed, "spy", {"connect": port})
        assert denied.status_code == 200, denied.text
        assert denied.json()["result"]["connect"] != "ok"
        granted = call(sandboxed, "netok", {"connect": port})
        assert granted.json()["result"]["connect"] == "ok"


def test_limits_kill_and_restart_with_a_clear_503(sandboxed: InProcess) -> None:
    response = call(sandboxed, "hog", "alloc")
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "worker_died"
    assert "ran out of memory (limit 64 MiB)" in error["message"]
    assert call(sandboxed, "hog", "fine").json()["result"] == "ok"
    response = call(sandboxed, "hog", "spin")
    assert response.status_code == 503, response.text
    assert "exceeded its CPU-time limit of 1 s" in response.json()["error"]["message"]
    assert call(sandboxed, "hog", "fine").json()["result"] == "ok"
    assert call(sandboxed, "hello", "you").json()["result"] == "Hello you"


# -- pools of real workers -------------------------------------------------------------------


def test_tmp_is_private_to_each_model(tmp_path: Path) -> None:
    require_bwrap()
    first = worker_spec(tmp_path, name="first", source=SPY_MODEL, sandbox=True)
    second = worker_spec(tmp_path, name="second", source=SPY_MODEL, sandbox=True)
    marker = f"marker-{uuid.uuid4().hex}"

    async def main() -> None:
        pools = [Pool(s, LocalBackend(), tmp_path) for s in (first, second)]
        await asyncio.gather(*(p.start() for p in pools))
        try:
            assert await answer(pools[0], {"write_tmp": marker}) == {"write_tmp": "ok"}
            assert await answer(pools[0], {"tmp_has": marker}) == {"tmp_has": True}
            assert await answer(pools[1], {"tmp_has": marker}) == {"tmp_has": False}
        finally:
            await asyncio.gather(*(p.stop() for p in pools))

    asyncio.run(main())
    assert not (Path("/tmp") / marker).exists()  # nor in the host's


def test_without_the_sandbox_tmpdir_is_private_and_removed(tmp_path: Path) -> None:
    spec = worker_spec(tmp_path, name="plain", source=SPY_MODEL)

    async def main() -> str:
        pool = Pool(spec, LocalBackend(), tmp_path)
        await pool.start()
        try:
            result = await answer(pool, {"home": True})
        finally:
            await pool.stop()
        assert result["home"] == "ok"
        return str(result["tmpdir"])

    tmpdir = Path(asyncio.run(main()))
    assert tmpdir.parent.parent.parent == tmp_path / "homes"
    assert not tmpdir.exists()


@pytest.mark.parametrize("use_bwrap", [True, False], ids=["sandboxed", "plain"])
def test_a_model_over_its_limits_is_killed_while_others_keep_answering(
    tmp_path: Path, use_bwrap: bool
) -> None:
    if use_bwrap:
        require_bwrap()
    hog = worker_spec(
        tmp_path,
        name="hog",
        source=HOG_MODEL,
        sandbox=use_bwrap,
        memory_bytes=64 * MIB,
        cpu_seconds=1,
    )
    hello = worker_spec(tmp_path, name="hello", source=HELLO_MODEL, sandbox=use_bwrap)

    async def other_keeps_answering(pool: Pool, spinning: asyncio.Task[Any]) -> int:
        answered = 0
        while not spinning.done():
            assert await answer(pool, "x") == "Hello x"
            answered += 1
            await asyncio.sleep(0.05)
        return answered

    async def main() -> None:
        pools = [Pool(hog, LocalBackend(), tmp_path), Pool(hello, LocalBackend(), tmp_path)]
        await asyncio.gather(*(p.start() for p in pools))
        try:
            with pytest.raises(WorkerDied) as memory:
                await answer(pools[0], "alloc")
            assert "ran out of memory (limit 64 MiB)" in memory.value.message
            assert memory.value.details["limit"] == "memory"
            assert await answer(pools[0], "fine") == "ok"

            spinning = asyncio.ensure_future(answer(pools[0], "spin"))
            answered = await other_keeps_answering(pools[1], spinning)
            with pytest.raises(WorkerDied) as cpu:
                await spinning
            assert "exceeded its CPU-time limit of 1 s" in cpu.value.message
            assert cpu.value.details["limit"] == "cpu_time"
            assert answered > 3
            assert await answer(pools[0], "fine") == "ok"
            assert pools[1].stats().restarts == 0
        finally:
            await asyncio.gather(*(p.stop() for p in pools))

    asyncio.run(main())


def test_the_cpu_limit_is_per_call(tmp_path: Path) -> None:
    """Calls that each stay under the limit never add up to a kill."""
    spec = worker_spec(tmp_path, name="hog", source=HOG_MODEL, cpu_seconds=1)

    async def main() -> None:
        pool = Pool(spec, LocalBackend(), tmp_path)
        await pool.start()
        try:
            for _ in range(4):
                assert await answer(pool, "busy 0.6") == "ok"
            assert pool.stats().restarts == 0
        finally:
            await pool.stop()

    asyncio.run(main())


# -- when bwrap is missing ---------------------------------------------------------------------


@pytest.fixture
def no_bwrap(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """A machine without bubblewrap: this process's PATH, less ``bwrap``."""
    shim = tmp_path_factory.mktemp("path-without-bwrap")
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not Path(folder).is_dir():
            continue
        for entry in Path(folder).iterdir():
            target = shim / entry.name
            if entry.name != "bwrap" and not target.is_symlink():
                target.symlink_to(entry)
    monkeypatch.setenv("PATH", str(shim))
    sandbox_status.cache_clear()
    assert sandbox_status().reason == "bwrap not found"
    yield
    sandbox_status.cache_clear()  # probed again once PATH is back


@pytest.mark.usefixtures("no_bwrap")
def test_required_refuses_and_auto_warns_without_bwrap(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(Unavailable, match=r"required.*bwrap not found"):
        use_sandbox("required")
    assert use_sandbox("auto") is False
    assert use_sandbox("off") is False
    notice = sandbox_notice("auto")
    assert notice is not None and notice[0] == logging.WARNING
    assert "network isolation, file-system isolation are NOT enforced" in notice[1]
    assert "memory and CPU limits still are" in notice[1]

    with caplog.at_level(logging.WARNING, logger="algora.platform"):
        platform = Platform.open(Settings(data_dir=tmp_path / "data"))
    asyncio.run(platform.aclose())
    assert any("worker sandbox unavailable (bwrap not found)" in r.message for r in caplog.records)

    # auto still serves, unsandboxed; the limits hold all the same.
    spec = worker_spec(tmp_path, name="hog", source=HOG_MODEL, sandbox=True, memory_bytes=64 * MIB)

    async def main() -> None:
        pool = Pool(spec, LocalBackend(), tmp_path / "data")
        await pool.start()
        try:
            assert await answer(pool, "fine") == "ok"
            with pytest.raises(WorkerDied, match="ran out of memory"):
                await answer(pool, "alloc")
        finally:
            await pool.stop()

    asyncio.run(main())


def test_the_build_command_runs_in_the_sandbox_too(sandboxed: InProcess, tmp_path: Path) -> None:
    data = sandboxed.data_dir.resolve()
    probe = textwrap.dedent(
        f"""
        import json, socket
        found = {{}}
        for path in ({str(data / "admin.key")!r}, {str(data / "registry.db")!r}):
            try:
                open(path, "rb").close()
                found[path] = "readable"
            except OSError as exc:
                found[path] = type(exc).__name__
        try:
            socket.create_connection(("127.0.0.1", 9), timeout=1).close()
            found["network"] = "reachable"
        except OSError as exc:
            found["network"] = type(exc).__name__
        json.dump(found, open("probe.json", "w"))
        """
    )
    folder = write_model(
        tmp_path / "builder",
        "builder",
        "import json\ndef apply(input: str) -> dict:\n    return json.load(open('probe.json'))\n",
        extra_manifest='\n[build]\ncommand = ["python", "probe.py"]\n',
        files={"probe.py": probe},
    )
    sandboxed.client.publish(folder)
    found = call(sandboxed, "builder", "x").json()["result"]
    assert found[str(data / "admin.key")] == "FileNotFoundError"
    assert found[str(data / "registry.db")] == "FileNotFoundError"
    assert found["network"] != "reachable"


PROBE = textwrap.dedent(
    """
    import json

    def probe():
        try:
            open(OUTSIDE, "rb").close()
        except OSError as exc:
            return type(exc).__name__
        return "readable"

    if __name__ == "__main__":
        json.dump(probe(), open("built.json", "w"))
    """
)

PROBED_MODEL = textwrap.dedent(
    """
    import json
    from probe import probe

    def apply(input: str) -> dict:
        return {"build": json.load(open("built.json")), "serve": probe()}
    """
)


@pytest.mark.usefixtures("no_bwrap")
def test_without_bwrap_one_rule_builds_and_serves(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``auto`` builds and serves without the sandbox, said once at start-up; ``required``
    neither builds nor serves."""
    data = tmp_path / "data"
    outside = tmp_path / "outside.txt"  # what a sandboxed build or worker could not open
    outside.write_text("x")
    folder = write_model(
        tmp_path / "probed",
        "probed",
        PROBED_MODEL,
        extra_manifest='\n[build]\ncommand = ["python", "probe.py"]\n',
        files={"probe.py": f"OUTSIDE = {str(outside)!r}\n{PROBE}"},
        example='text = "x"',
    )
    warnings = caplog.at_level(logging.WARNING, logger="algora.platform")
    with warnings, in_process(data, default_call_timeout=20) as gateway:
        gateway.client.publish(folder)
        response = call(gateway, "probed", "x")
        assert response.status_code == 200, response.text
        assert response.json()["result"] == {"build": "readable", "serve": "readable"}
    notices = [r.message for r in caplog.records if "worker sandbox" in r.message]
    assert len(notices) == 1
    assert "models build and serve without it" in notices[0]

    with in_process(data, default_call_timeout=20, sandbox="required") as gateway:
        response = call(gateway, "probed", "x")
        assert response.status_code == 503, response.text
        assert "no model can be built or served" in response.json()["error"]["message"]
        with pytest.raises(BuildFailed, match="no model can be built or served"):
            gateway.client.publish(folder)
