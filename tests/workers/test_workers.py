"""Pools of real worker processes: calls, concurrency, timeouts, crashes, batching, overload."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from algora.errors import (
    CallTimeout,
    InvalidInput,
    ModelError,
    ModelLoadFailed,
    Overloaded,
    Unavailable,
    WorkerDied,
)
from algora.publishing.smoke import smoke_test
from algora.workers.local import LocalBackend, worker_environment
from algora.workers.manager import PoolManager
from algora.workers.pool import Pool
from algora.workers.spec import CallRequest, CallResult

from ..helpers import encode, run_with_pool, worker_spec

MODEL = """
import os
import time

def apply(input):
    if input == "fail":
        raise KeyError("no such thing")
    if isinstance(input, bytes):
        return input[::-1]
    if isinstance(input, str):
        if input == "sleep":
            time.sleep(30)
        if input == "die":
            os._exit(3)
        print("echo", input)
        return input.upper()
    if isinstance(input, dict) and "sleep" in input:
        time.sleep(input["sleep"])
        return {"pid": os.getpid()}
    return {"got": input, "pid": os.getpid()}
"""

BATCH_MODEL = """
import os
import time

class Model:
    def load(self):
        self.sizes = []

    def predict(self, input: int) -> int:
        if input == -1:
            time.sleep(0.3)
        self.sizes.append(1)
        return input * 2

    def predict_batch(self, inputs: list[int]) -> list[int]:
        self.sizes.append(len(inputs))
        return [x * 2 for x in inputs]
"""

SIZES_MODEL = BATCH_MODEL.replace(
    "        return input * 2\n",
    "        return self.sizes if input == -2 else input * 2\n",
)


def req(
    value: Any, content_type: str = "json", timeout: float = 10.0, rid: str = "r"
) -> CallRequest:
    return CallRequest(rid, content_type, encode(value, content_type), timeout)  # type: ignore[arg-type]


def test_calls_json_text_binary(tmp_path: Path) -> None:
    spec = worker_spec(tmp_path, MODEL)

    async def body(pool: Pool) -> None:
        assert pool.info is not None and pool.info.kind == "function"
        assert pool.healthy
        result = await pool.call(req([1, 2]))
        assert result.content_type == "json"
        assert json.loads(result.payload)["got"] == [1, 2]
        result = await pool.call(req("hi", "text"))
        assert (result.content_type, result.payload, result.stdout) == ("text", b"HI", "echo hi\n")
        result = await pool.call(req(b"\x01\x02", "binary"))
        assert (result.content_type, result.payload) == ("binary", b"\x02\x01")
        with pytest.raises(ModelError) as info:
            await pool.call(req("fail"))
        assert info.value.details["error_type"] == "KeyError"
        assert "raise KeyError" in info.value.details["stacktrace"]
        with pytest.raises(InvalidInput):
            await pool.call(CallRequest("bad", "json", b"{nope", 5.0))
        stats = pool.stats()
        assert (stats.alive, stats.queued, stats.in_flight, stats.restarts) == (1, 0, 0, 0)

    run_with_pool(tmp_path, spec, body)
    mode = (tmp_path / "logs" / "worker.log").stat().st_mode & 0o777
    assert mode == 0o600


def test_two_replicas_serve_concurrently(tmp_path: Path) -> None:
    spec = worker_spec(tmp_path, MODEL, replicas=2)

    async def body(pool: Pool) -> None:
        started = time.perf_counter()
        calls = (pool.call(req({"sleep": 0.5}, rid=str(i))) for i in range(2))
        results = await asyncio.gather(*calls)
        elapsed = time.perf_counter() - started
        pids = {json.loads(r.payload)["pid"] for r in results}
        assert len(pids) == 2
        assert elapsed < 0.95  # one after the other would take 1 s

    run_with_pool(tmp_path, spec, body)


def test_timeout_kills_and_replaces_the_worker(tmp_path: Path) -> None:
    spec = worker_spec(tmp_path, MODEL)

    async def body(pool: Pool) -> None:
        before = json.loads((await pool.call(req(0))).payload)["pid"]
        started = time.perf_counter()
        with pytest.raises(CallTimeout):
            await pool.call(req("sleep", "text", timeout=0.3))
        assert time.perf_counter() - started < 1.0
        after = json.loads((await pool.call(req(0))).payload)["pid"]
        assert after != before
        assert pool.stats().restarts == 1

    run_with_pool(tmp_path, spec, body)


def test_queued_call_times_out_without_reaching_a_worker(tmp_path: Path) -> None:
    spec = worker_spec(tmp_path, MODEL)

    async def body(pool: Pool) -> None:
        busy = asyncio.ensure_future(pool.call(req({"sleep": 0.4}, rid="busy")))
        await asyncio.sleep(0.05)
        with pytest.raises(CallTimeout):
            await pool.call(req(1, timeout=0.1, rid="queued"))
        assert pool.stats().queued == 0
        await busy
        assert pool.stats().restarts == 0  # nothing was killed for the queued call

    run_with_pool(tmp_path, spec, body)


def test_stop_lets_the_call_in_flight_finish(tmp_path: Path) -> None:
    spec = worker_spec(tmp_path, MODEL)

    async def main() -> None:
        pool = Pool(spec, LocalBackend(), tmp_path / "data")
        await pool.start()
        running = asyncio.ensure_future(pool.call(req({"sleep": 0.3}, rid="a")))
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(pool.call(req(1, rid="b")))
        await asyncio.sleep(0)
        await pool.stop()
        assert "pid" in json.loads((await running).payload)
        with pytest.raises(Unavailable):
            await queued
        with pytest.raises(Unavailable):
            await pool.call(req(1))

    asyncio.run(main())


def test_worker_death_fails_fast_and_the_pool_recovers(tmp_path: Path) -> None:
    spec = worker_spec(tmp_path, MODEL)

    async def body(pool: Pool) -> None:
        started = time.perf_counter()
        with pytest.raises(WorkerDied) as info:
            await pool.call(req("die", "text", timeout=20))
        assert time.perf_counter() - started < 2.0
        assert info.value.details["exit_status"] == 3
        result = await pool.call(req(5, timeout=20))
        assert json.loads(result.payload)["got"] == 5
        assert pool.stats().restarts == 1
        assert pool.healthy

    run_with_pool(tmp_path, spec, body)


def test_failing_restarts_fail_calls_fast_then_recover(tmp_path: Path) -> None:
    marker = tmp_path / "broken"
    source = f"""
import os
from pathlib import Path

MARKER = Path({str(marker)!r})
if MARKER.exists():
    raise RuntimeError("cannot load any more")

def apply(input):
    if input == "break":
        MARKER.touch()
        os._exit(1)
    return input
"""
    spec = worker_spec(tmp_path, source)

    async def body(pool: Pool) -> None:
        with pytest.raises(WorkerDied):
            await pool.call(req("break"))
        deadline = time.monotonic() + 5
        while pool.stats().restart_error is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert not pool.healthy
        started = time.perf_counter()
        with pytest.raises(WorkerDied, match="cannot load any more"):
            await pool.call(req(1, timeout=10))
        assert time.perf_counter() - started < 0.1
        marker.unlink()
        while not pool.healthy and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert (await pool.call(req(1))).payload == b"1"
        assert pool.stats().restarts == 1

    run_with_pool(tmp_path, spec, body)


def test_batching_sends_waiting_calls_together(tmp_path: Path) -> None:
    spec = worker_spec(tmp_path, SIZES_MODEL, entrypoint="model:Model", max_batch=4)

    async def body(pool: Pool) -> None:
        assert pool.info is not None and pool.info.batch
        # Occupy the worker so that the next calls queue up, then release them together.
        slow = asyncio.ensure_future(pool.call(req(-1, rid="slow")))
        await asyncio.sleep(0.05)
        calls = [pool.call(req(i, rid=f"r{i}")) for i in range(10)]
        results = await asyncio.gather(*calls)
        assert [json.loads(r.payload) for r in results] == [i * 2 for i in range(10)]
        await slow
        sizes = json.loads((await pool.call(req(-2))).payload)
        assert sizes[0] == 1
        assert max(sizes) == 4
        assert sizes[1:-1] == [4, 4, 2]  # the last entry is the -2 call itself

    run_with_pool(tmp_path, spec, body)


def test_overload_is_refused(tmp_path: Path) -> None:
    spec = worker_spec(tmp_path, MODEL, max_queue=2)

    async def body(pool: Pool) -> None:
        busy = [asyncio.ensure_future(pool.call(req({"sleep": 0.3}, rid=str(i)))) for i in range(3)]
        await asyncio.sleep(0.05)
        assert pool.stats().queued == 2
        with pytest.raises(Overloaded):
            await pool.call(req(1))
        await asyncio.gather(*busy)

    run_with_pool(tmp_path, spec, body)


def test_load_failure_raises_model_load_failed(tmp_path: Path) -> None:
    spec = worker_spec(tmp_path, "print('loading...')\nraise RuntimeError('weights missing')\n")

    async def main() -> None:
        pool = Pool(spec, LocalBackend(), tmp_path / "data")
        with pytest.raises(ModelLoadFailed) as info:
            await pool.start()
        assert info.value.message == "weights missing"
        assert info.value.details["error_type"] == "RuntimeError"
        assert "weights missing" in info.value.details["stacktrace"]
        assert "loading..." in info.value.details["log_tail"]
        with pytest.raises(Unavailable):
            await pool.call(req(1))

    asyncio.run(main())


def test_smoke_test(tmp_path: Path) -> None:
    spec = worker_spec(tmp_path, MODEL, replicas=3)
    info, result = asyncio.run(
        smoke_test(spec, LocalBackend(), tmp_path / "data", ("text", b"abc"), 10.0)
    )
    assert info.kind == "function"
    assert isinstance(result, CallResult)
    assert result.payload == b"ABC"
    info, result = asyncio.run(smoke_test(spec, LocalBackend(), tmp_path / "data", None, 10.0))
    assert result is None


def test_manager_starts_one_pool_for_concurrent_gets(tmp_path: Path) -> None:
    spec = worker_spec(tmp_path, MODEL)

    async def main() -> None:
        manager = PoolManager(tmp_path / "data", LocalBackend())
        pools = await asyncio.gather(*(manager.get("m/1", spec) for _ in range(5)))
        assert len({id(p) for p in pools}) == 1
        assert list(manager.pools()) == ["m/1"]
        await manager.stop("m/1")
        assert manager.pools() == {}
        again = await manager.get("m/1", spec)
        assert again is not pools[0]
        await manager.stop_all()
        assert not again.healthy

    asyncio.run(main())


def test_manager_does_not_cache_failed_starts(tmp_path: Path) -> None:
    spec = worker_spec(tmp_path, "raise RuntimeError('not yet')\n")

    async def main() -> None:
        manager = PoolManager(tmp_path / "data", LocalBackend())
        for _ in range(2):
            with pytest.raises(ModelLoadFailed):
                await manager.get("m/1", spec)
        (spec.source_dir / "model.py").write_text("def apply(x):\n    return x\n")
        pool = await manager.get("m/1", spec)
        assert (await pool.call(req(7))).payload == b"7"
        await manager.stop_all()

    asyncio.run(main())


def test_worker_environment_holds_no_gateway_secrets(tmp_path: Path) -> None:
    os.environ["ALGORA_TEST_SECRET"] = "hunter2"
    try:
        spec = worker_spec(tmp_path, MODEL, env={"MODEL_FLAG": "1"})
        env = worker_environment(spec, tmp_path / "home")
    finally:
        del os.environ["ALGORA_TEST_SECRET"]
    assert set(env) == {"PATH", "LANG", "LC_ALL", "HOME", "MODEL_FLAG"}
    assert env["HOME"] == str(tmp_path / "home")


def test_manager_stops_idle_pools_and_restarts_them_on_demand(tmp_path: Path) -> None:
    spec = worker_spec(tmp_path, MODEL)

    async def main() -> None:
        manager = PoolManager(tmp_path / "data", LocalBackend(), idle_seconds=1.0)
        busy = await manager.get("busy", spec)
        idle = await manager.get("idle", spec)
        assert manager.running("busy") is busy and manager.running("idle") is idle
        # Used again now that both run: starting one may take longer than the idle time.
        await manager.get("busy", spec), await manager.get("idle", spec)
        assert await manager.evict_idle() == []  # both were just used
        deadline = time.monotonic() + 15
        while "idle" in dict(manager.pools()) and time.monotonic() < deadline:
            await manager.get("busy", spec)  # a call keeps a pool alive (looking does too)
            await asyncio.sleep(0.1)
        assert not idle.healthy and busy.healthy
        assert list(manager.pools()) == ["busy"]
        again = await manager.get("idle", spec)
        result = await again.call(CallRequest("r", "text", b"back", 10))
        assert result.payload == b"BACK"
        await manager.stop_all()

    asyncio.run(main())
