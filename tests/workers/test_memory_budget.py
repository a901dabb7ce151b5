"""The workers' memory budget: idle pools stop, least recently used first, when the workers
hold more memory (PSS) than the budget."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from algora.workers.local import LocalBackend
from algora.workers.manager import PoolManager
from algora.workers.memory import budget_bytes, over_budget, pss_bytes
from algora.workers.spec import CallRequest

from ..helpers import worker_spec

MODEL = "import time\n\ndef apply(input):\n    time.sleep(float(input))\n    return input\n"


def test_the_least_recently_used_idle_pools_go_first_until_the_rest_fit() -> None:
    usage = {"a": 100, "b": 100, "c": 100, "busy": 100}
    last_used = {"a": 3.0, "b": 1.0, "c": 2.0, "busy": 0.0}
    idle = {"a", "b", "c"}
    assert over_budget(usage, last_used, idle, budget=400) == []
    assert over_budget(usage, last_used, idle, budget=250) == ["b", "c"]
    assert over_budget(usage, last_used, idle, budget=0) == ["b", "c", "a"]  # never "busy"


def test_memory_is_read_as_pss_of_a_process_and_what_it_started() -> None:
    mine = pss_bytes([os.getpid()])
    assert 1 << 20 < mine < 16 << 30
    assert pss_bytes([]) == 0
    assert budget_bytes(100) == 100 << 20
    default = budget_bytes(None)
    assert default is not None and default > 0


def test_starting_a_pool_past_the_budget_stops_the_least_recently_used_idle_one(
    tmp_path: Path,
) -> None:
    spec = worker_spec(tmp_path, MODEL)
    data = tmp_path / "data"

    async def main() -> None:
        probe = PoolManager(data, LocalBackend())
        one = pss_bytes((await probe.get("probe", spec)).stats().pids)
        await probe.stop_all()
        assert one > 0
        manager = PoolManager(data, LocalBackend(), memory_budget=int(one * 2.5))
        try:
            first = await manager.get("first", spec)
            await manager.get("second", spec)
            used = manager.running("first")  # as a call finds its pool: "second" is older now
            assert used is first
            await used.call(CallRequest("r", "text", b"0", 10))
            await manager.get("third", spec)
            assert sorted(manager.pools()) == ["first", "third"]
            # a pool that is serving a call is never stopped for memory
            held = asyncio.create_task(first.call(CallRequest("s", "text", b"3", 10)))
            while not first.stats().in_flight:
                await asyncio.sleep(0.01)
            await manager.get("fourth", spec)
            await held
            assert "first" in manager.pools() and "fourth" in manager.pools()
        finally:
            await manager.stop_all()

    asyncio.run(main())
