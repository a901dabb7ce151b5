"""Autoscaling with real worker processes: up under sustained demand, down when idle, to zero
when the version allows it, and never below its floor."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from algora.errors import InvalidManifest
from algora.modelfolder.manifest import validate_manifest
from algora.workers.autoscale import SUSTAINED, Autoscaler, Load
from algora.workers.local import LocalBackend
from algora.workers.manager import PoolManager
from algora.workers.pool import Pool

from ..helpers import worker_spec
from .test_workers import MODEL, req, run_with_pool


def test_the_autoscaler_grows_on_sustained_demand_and_shrinks_when_calm(tmp_path: Path) -> None:
    spec = worker_spec(tmp_path, MODEL, replicas=1, max_replicas=3, min_replicas=1)
    load = Load(replicas=1, demand=5)
    grown: list[int] = []
    shrunk: list[tuple[float, int]] = []

    async def grow() -> None:
        grown.append(1)

    def shrink(idle_for: float, most: int) -> int:
        shrunk.append((idle_for, most))
        return 0

    scaler = Autoscaler(spec, load=lambda: load, grow=grow, shrink=shrink)

    async def main() -> None:
        await scaler.tick(0.0)
        await scaler.tick(SUSTAINED / 2)
        assert grown == []  # not sustained yet
        await scaler.tick(SUSTAINED)
        assert grown == [1]
        await scaler.tick(SUSTAINED * 1.5)
        assert grown == [1]  # the next step waits for sustained demand again
        assert shrunk == []  # nothing retires under pressure
        nonlocal load
        load = Load(replicas=3, demand=0)
        await scaler.tick(11.0)
        # Replicas above the floor of one may go, those idle for scale_down_after.
        assert shrunk == [(spec.scale_down_after, 2)]

    asyncio.run(main())


def test_a_pool_scales_up_under_load_and_back_down(tmp_path: Path) -> None:
    spec = worker_spec(
        tmp_path, MODEL, replicas=1, min_replicas=1, max_replicas=3, scale_down_after=0.5
    )

    async def body(pool: Pool) -> None:
        calls = [pool.call(req({"sleep": 0.25}, rid=f"c{i}")) for i in range(24)]
        started = time.monotonic()
        results = await asyncio.gather(*calls)
        took = time.monotonic() - started
        pids = {json.loads(r.payload)["pid"] for r in results}
        assert len(pids) > 1, "no replica was added"
        assert pool.stats().alive <= 3
        assert took < 24 * 0.25 * 0.85  # the added replicas took part of the work
        deadline = time.monotonic() + 10
        while pool.stats().alive > 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert pool.stats().alive == 1
        assert json.loads((await pool.call(req(5))).payload)["got"] == 5

    run_with_pool(tmp_path, spec, body)


def test_min_replicas_zero_scales_to_zero_and_one_keeps_warm(tmp_path: Path) -> None:
    cold = worker_spec(tmp_path, MODEL, name="cold", min_replicas=0, scale_down_after=0.3)
    warm = worker_spec(tmp_path, MODEL, name="warm", min_replicas=1, scale_down_after=0.3)

    async def main() -> None:
        manager = PoolManager(tmp_path / "data", LocalBackend(), idle_seconds=0.0)
        try:
            for key, spec in (("cold", cold), ("warm", warm)):
                pool = await manager.get(key, spec)
                assert json.loads((await pool.call(req(1))).payload)["got"] == 1
            await asyncio.sleep(1.5)
            assert manager.running("cold") is None
            assert manager.running("warm") is not None
            pool = await manager.get("cold", cold)  # the next call starts it again
            assert json.loads((await pool.call(req(2))).payload)["got"] == 2
        finally:
            await manager.stop_all()

    asyncio.run(main())


def test_the_manifest_bounds_replicas() -> None:
    serving = validate_manifest(
        {"model": {"name": "m"}, "serving": {"min_replicas": 0, "max_replicas": 4}}
    ).serving
    assert (serving.min_replicas, serving.replicas, serving.max_replicas) == (0, 1, 4)
    for wrong in ({"min_replicas": 2}, {"replicas": 3, "max_replicas": 2}):
        with pytest.raises(InvalidManifest, match="min_replicas <= replicas <= max_replicas"):
            validate_manifest({"model": {"name": "m"}, "serving": wrong})
