"""``algora serve --workers 2`` as a user starts it: two gateway processes on one port.

Which process answered a call shows in its request id: each process draws a random prefix
for the ids it makes (``algora.gateway.calls.new_request_id``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from algora.testing import RunningServer, write_model

from ..helpers import algora
from ..reliability.harness import children, cmdline

HELLO = 'def apply(input: str) -> str:\n    return "Hello " + input\n'
HOWDY = 'def apply(input: str) -> str:\n    return "Howdy " + input\n'
TOTAL = "def apply(input: list[float]) -> float:\n    return sum(input)\n"
SLEEPER = "import time\n\ndef apply(input: float) -> str:\n    time.sleep(input)\n    return ''\n"
CALLS = 40


def process_of(request_id: str) -> str:
    """The per-process part of a request id made by the gateway (``req-`` + 16 hex digits)."""
    assert request_id.startswith("req-"), request_id
    return request_id[:20]


def fronts_of(server: RunningServer) -> list[int]:
    assert server.process is not None
    return [p for p in children(server.process.pid) if "algora.multiproc" in cmdline(p)]


def publish(server: RunningServer, root: Path, name: str, code: str, **kw: object) -> None:
    with server.client() as admin:
        admin.publish(write_model(root / name, name, code, **kw))  # type: ignore[arg-type]


def algo(server: RunningServer, path: str, body: object, key: str | None = None) -> httpx.Response:
    """One call on a connection of its own (so the kernel picks a process for each)."""
    headers = {"Authorization": f"Simple {key or server.key}"}
    return httpx.post(f"{server.url}/v1/algo/{path}", json=body, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("workers")
    with RunningServer(root / "data", args=("--workers", "2")) as running:
        publish(running, root / "models", "hello", HELLO)
        publish(running, root / "models", "total", TOTAL)
        yield running


def test_two_processes_serve_the_port_and_each_answers_calls_on_every_api(
    server: RunningServer,
) -> None:
    assert len(fronts_of(server)) == 1
    seen: Counter[str] = Counter()
    for i in range(CALLS):
        answer = algo(server, "admin/hello", f"n{i}")
        assert answer.status_code == 200, answer.text
        assert answer.json()["result"] == f"Hello n{i}"
        seen[process_of(answer.headers["x-request-id"])] += 1
        tensor = {"name": "input", "datatype": "FP64", "shape": [3], "data": [1, 2, i]}
        v2 = httpx.post(
            f"{server.url}/v2/models/admin/total/infer",
            json={"inputs": [tensor]},
            headers={"Authorization": f"Simple {server.key}"},
            timeout=60,
        )
        assert v2.status_code == 200, v2.text
        assert v2.json()["outputs"][0]["data"] == [3 + i]
        seen[process_of(v2.headers["x-request-id"])] += 1
    assert len(seen) == 2, f"calls landed on {dict(seen)}"
    with server.client() as sdk:  # the SDK, on one kept-alive connection
        assert [sdk.model("admin/hello").call(str(i)) for i in range(5)] == [
            f"Hello {i}" for i in range(5)
        ]


def test_many_connections_at_once_are_answered_by_both(server: RunningServer) -> None:
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda i: algo(server, "admin/hello", str(i)), range(CALLS * 2)))
    assert [a.status_code for a in answers] == [200] * len(answers)
    assert [a.json()["result"] for a in answers] == [f"Hello {i}" for i in range(len(answers))]
    assert len({process_of(a.headers["x-request-id"]) for a in answers}) == 2


def test_a_revoked_key_is_refused_at_once_by_every_process(server: RunningServer) -> None:
    admin = {"Authorization": f"Simple {server.key}"}
    made = httpx.post(f"{server.url}/api/v1/keys", json={"scopes": ["call"]}, headers=admin)
    assert made.status_code == 201, made.text
    key, key_id = made.json()["key"], made.json()["key_id"]
    warm = [algo(server, "admin/hello", "x", key) for _ in range(CALLS)]  # cached everywhere
    assert {a.status_code for a in warm} == {200}
    assert len({process_of(a.headers["x-request-id"]) for a in warm}) == 2
    revoked = httpx.delete(f"{server.url}/api/v1/keys/{key_id}", headers=admin)
    assert revoked.is_success, revoked.text
    after = [algo(server, "admin/hello", "x", key).status_code for _ in range(CALLS)]
    assert after == [401] * CALLS


def test_a_key_gets_its_rate_limit_once_not_once_per_process(server: RunningServer) -> None:
    admin = {"Authorization": f"Simple {server.key}"}
    made = httpx.post(f"{server.url}/api/v1/keys", json={"name": "limited"}, headers=admin)
    assert made.status_code == 201, made.text
    limit = {"rate_per_second": 5, "burst": 5}
    limited = httpx.patch(
        f"{server.url}/api/v1/keys/{made.json()['key_id']}", json=limit, headers=admin
    )
    assert limited.status_code == 200, limited.text
    started = time.monotonic()
    statuses = [algo(server, "admin/hello", "x", made.json()["key"]).status_code for _ in range(60)]
    took = time.monotonic() - started
    assert set(statuses) <= {200, 429}, statuses
    allows = 5 + 5 * took  # the burst, and 5 a second of the time the calls took
    assert 5 <= statuses.count(200) <= allows * 1.1, f"{statuses.count(200)} in {took:.2f} s"


def test_after_a_publish_every_process_serves_the_new_version(
    server: RunningServer, tmp_path: Path
) -> None:
    publish(server, tmp_path, "greet", HELLO)
    before = [algo(server, "admin/greet", "x") for _ in range(CALLS)]  # "latest" cached
    assert {a.json()["result"] for a in before} == {"Hello x"}
    publish(server, tmp_path / "2", "greet", HOWDY)
    after = [algo(server, "admin/greet", "x") for _ in range(CALLS)]
    assert [a.status_code for a in after] == [200] * CALLS, after[0].text
    assert {a.json()["result"] for a in after} == {"Howdy x"}
    assert len({process_of(a.headers["x-request-id"]) for a in after}) == 2


def test_a_published_version_is_warm_in_every_process_before_its_first_call(
    tmp_path: Path,
) -> None:
    warm = {"ALGORA_WARM_ON_PUBLISH": "true"}  # the production default; off in the suite
    with RunningServer(tmp_path / "data", args=("--workers", "2"), env=warm) as server:
        assert server.process is not None
        processes = [server.process.pid, *fronts_of(server)]
        publish(server, tmp_path / "models", "warmed", HELLO)  # through one of them
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            started = [len(_workers(pid)) for pid in processes]
            if started == [1, 1]:
                break
            time.sleep(0.1)
        assert started == [1, 1], "a process did not start the new version's worker"


def _workers(pid: int) -> set[int]:
    return {child for child in children(pid) if " --entrypoint " in cmdline(child)}


def test_the_audit_chain_holds_the_calls_of_both_processes(server: RunningServer) -> None:
    ids = [algo(server, "admin/hello", "audited").headers["x-request-id"] for _ in range(CALLS)]
    assert len({process_of(i) for i in ids}) == 2
    deadline = time.monotonic() + 30
    while True:  # each process's writer commits its journal within moments
        export = httpx.get(
            f"{server.url}/api/v1/audit/export",
            params={"model": "admin/hello"},
            headers={"Authorization": f"Simple {server.key}"},
            timeout=60,
        )
        assert export.status_code == 200, export.text
        rows = Counter(json.loads(line)["request_id"] for line in export.text.splitlines())
        if all(rows[i] for i in ids) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [rows[i] for i in ids] == [1] * CALLS
    verified = algora("audit", "verify", server=server)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("ok")


def test_sigterm_under_load_answers_every_call_in_flight_on_both(tmp_path: Path) -> None:
    with RunningServer(tmp_path / "data", args=("--workers", "2")) as server:
        serving = "\n[serving]\nreplicas = 4\n"  # in each process
        publish(server, tmp_path / "models", "slow", SLEEPER, extra_manifest=serving)
        assert algo(server, "admin/slow", 0).status_code == 200
        (front,) = fronts_of(server)
        auth = {"Authorization": f"Simple {server.key}"}
        with ExitStack() as stack, ThreadPoolExecutor(12) as pool:
            # Each on a connection already open to one process or the other, so that every
            # call has reached its process when the SIGTERM comes (a connection the kernel
            # holds for a process that has stopped accepting is refused, as by any server).
            clients = [
                stack.enter_context(httpx.Client(headers=auth, timeout=60)) for _ in range(12)
            ]
            for client in clients:
                assert client.get(f"{server.url}/healthz").status_code == 200
            url = f"{server.url}/v1/algo/admin/slow"
            calls = [pool.submit(client.post, url, json=3) for client in clients]
            time.sleep(1.5)  # all sent, none answered
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            answers = [c.result() for c in calls]
        assert [a.status_code for a in answers] == [200] * len(answers)
        assert len({process_of(a.headers["x-request-id"]) for a in answers}) == 2
        assert server.process.wait(timeout=60) is not None
        assert _gone(front)


def test_a_front_stops_when_its_primary_dies(tmp_path: Path) -> None:
    with RunningServer(tmp_path / "data", args=("--workers", "2")) as server:
        (front,) = fronts_of(server)
        assert server.process is not None
        server.process.kill()
        server.process.wait(timeout=10)
        assert _gone(front)


def test_a_front_that_dies_is_started_again(tmp_path: Path) -> None:
    with RunningServer(tmp_path / "data", args=("--workers", "2")) as server:
        publish(server, tmp_path / "models", "hello", HELLO)
        (front,) = fronts_of(server)
        os.kill(front, signal.SIGKILL)
        assert _gone(front)
        deadline = time.monotonic() + 60
        while not (fronts := fronts_of(server)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(fronts) == 1 and fronts != [front]
        assert f"front process {front} exited" in server.log()
        processes: set[str] = set()
        while len(processes) < 2 and time.monotonic() < deadline:  # once the new one serves
            answer = algo(server, "admin/hello", "x")
            assert answer.status_code == 200, answer.text
            processes.add(process_of(answer.headers["x-request-id"]))
        assert len(processes) == 2


def test_workers_must_be_a_count(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "algora", "serve", "--workers", "-1"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert "--workers" in done.stderr


def _gone(pid: int, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or "algora" not in cmdline(pid):
            return True
        time.sleep(0.1)
    return False
