"""Backpressure: a call that could only time out in the queue is refused at once, a deadline
that passes in the queue never touches the worker, a running call is killed only for its own
time, and a caller who hangs up leaves the queue (through a real ``algora serve``)."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from algora.errors import CallTimeout, Overloaded, retry_after
from algora.testing import RunningServer, write_model
from algora.workers.admission import ServiceTime
from algora.workers.pool import Pool

from ..helpers import worker_spec
from .test_workers import MODEL, req, run_with_pool


def test_expected_wait_counts_dispatches_of_a_batch_per_worker() -> None:
    service = ServiceTime()
    assert service.expected_wait(100, 1, 1) == 0.0  # nothing measured yet: nothing refused
    service.observe(0.5)
    assert service.expected_wait(1, 1, 1) == 0.5
    assert service.expected_wait(4, 2, 1) == 1.0
    assert service.expected_wait(64, 1, 32) == 1.0
    service.observe(1.5)
    assert service.expected_wait(1, 1, 1) == pytest.approx(0.7)


def test_a_call_that_would_outwait_its_deadline_is_refused_at_once(tmp_path: Path) -> None:
    spec = worker_spec(tmp_path, MODEL)

    async def body(pool: Pool) -> None:
        await pool.call(req({"sleep": 0.3}))  # the pool learns how long a call takes
        busy = [
            asyncio.ensure_future(pool.call(req({"sleep": 0.3}, rid=f"b{i}"))) for i in range(4)
        ]
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(Overloaded) as info:
            await pool.call(req(1, timeout=0.5))
        assert time.monotonic() - started < 0.05
        assert info.value.details["expected_wait"] > 0.5
        assert retry_after(info.value) is not None
        # A caller willing to wait is queued and answered.
        assert json.loads((await pool.call(req(2, timeout=10))).payload)["got"] == 2
        await asyncio.gather(*busy)
        assert pool.stats().restarts == 0

    run_with_pool(tmp_path, spec, body)


def test_a_deadline_passed_in_the_queue_spares_the_running_call(tmp_path: Path) -> None:
    spec = worker_spec(tmp_path, MODEL)

    async def body(pool: Pool) -> None:
        running = asyncio.ensure_future(pool.call(req({"sleep": 0.6}, rid="long", timeout=5)))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(CallTimeout):
            await pool.call(req(1, rid="queued", timeout=0.2))
        assert time.monotonic() - started < 0.5
        result = await running  # its worker was not killed for the other call's deadline
        pid = json.loads(result.payload)["pid"]
        assert json.loads((await pool.call(req(3))).payload)["pid"] == pid
        assert pool.stats().restarts == 0

    run_with_pool(tmp_path, spec, body)


def test_a_call_that_waited_is_killed_only_after_its_own_time(tmp_path: Path) -> None:
    spec = worker_spec(tmp_path, MODEL)

    async def body(pool: Pool) -> None:
        first = asyncio.ensure_future(pool.call(req({"sleep": 0.5}, rid="first", timeout=5)))
        await asyncio.sleep(0.05)
        # Waits ~0.45 s, then runs 0.4 s: past its 0.6 s deadline in all, but not past it
        # running. The caller hears 504 at the deadline; the worker finishes the call.
        with pytest.raises(CallTimeout):
            await pool.call(req({"sleep": 0.4}, rid="second", timeout=0.6))
        first_pid = json.loads((await first).payload)["pid"]
        await asyncio.sleep(0.5)
        assert json.loads((await pool.call(req(4))).payload)["pid"] == first_pid
        assert pool.stats().restarts == 0

    run_with_pool(tmp_path, spec, body)


SLOW = "import time\n\ndef apply(input):\n    time.sleep(float(input))\n    return input\n"


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    root = tmp_path_factory.mktemp("slow")
    with RunningServer(root / "data") as running:
        with running.client() as admin:
            admin.publish(write_model(root / "slow", "slow", SLOW))
        yield running  # type: ignore[misc]


def _post(server: RunningServer, seconds: float, request_id: str) -> bytes:
    body = json.dumps(seconds).encode()
    return (
        f"POST /v1/algo/admin/slow HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Simple {server.key}\r\nContent-Type: application/json\r\n"
        f"X-Request-Id: {request_id}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def test_a_caller_who_hangs_up_leaves_the_queue(slow_server: RunningServer) -> None:
    auth = {"Authorization": f"Simple {slow_server.key}"}
    url = f"{slow_server.url}/v1/algo/admin/slow"
    assert httpx.post(url, json=0.01, headers=auth, timeout=30).status_code == 200
    holder = socket.create_connection(("127.0.0.1", slow_server.port))
    holder.sendall(_post(slow_server, 1.0, "req-holder"))  # occupies the one worker
    time.sleep(0.2)
    for index in range(5):  # queued behind it, each asking for 2 s, then gone
        with socket.create_connection(("127.0.0.1", slow_server.port)) as quitter:
            quitter.sendall(_post(slow_server, 2.0, f"req-quitter-{index}"))
            time.sleep(0.05)
    started = time.monotonic()
    answer = httpx.post(url, json=0.01, headers=auth, timeout=30)
    waited = time.monotonic() - started
    holder.close()
    assert answer.status_code == 200, answer.text
    assert waited < 1.5, f"waited {waited:.2f} s: the hung-up calls still ran"
    rows = httpx.get(
        f"{slow_server.url}/api/v1/audit",
        params={"request_id": "req-quitter-0"},
        headers=auth,
        timeout=30,
    ).json()
    assert [(r["status"], r["error_code"]) for r in rows] == [(499, "client_disconnected")]


def test_sigterm_drains_the_calls_in_flight(tmp_path: Path) -> None:
    server = RunningServer(tmp_path / "data").start()
    try:
        with server.client() as admin:
            admin.publish(write_model(tmp_path / "slow", "slow", SLOW))
        auth = {"Authorization": f"Simple {server.key}"}
        url = f"{server.url}/v1/algo/admin/slow"
        assert httpx.post(url, json=0.01, headers=auth, timeout=30).status_code == 200

        async def calls() -> list[int]:
            async with httpx.AsyncClient(timeout=30) as client:
                sent = [
                    asyncio.ensure_future(
                        client.post(url, json=0.3, headers={**auth, "X-Request-Id": f"req-d{i}"})
                    )
                    for i in range(4)
                ]
                await asyncio.sleep(0.2)
                assert server.process is not None
                server.process.terminate()  # SIGTERM while all four are queued or running
                return [response.status_code for response in await asyncio.gather(*sent)]

        assert asyncio.run(calls()) == [200, 200, 200, 200]
        # uvicorn ends by the signal it was sent, once it has shut down cleanly.
        assert server.process is not None
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        server.stop()
    with RunningServer(tmp_path / "data") as again:
        rows = httpx.get(
            f"{again.url}/api/v1/audit",
            params={"action": "model.call", "status": 200, "limit": 100},
            headers={"Authorization": f"Simple {again.key}"},
            timeout=30,
        ).json()
        drained = {row["request_id"] for row in rows} & {f"req-d{i}" for i in range(4)}
        assert len(drained) == 4, rows
