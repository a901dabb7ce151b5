"""The pool manager: one pool per key (a version's identity), started on first use."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from algora.workers.backend import WorkerBackend
from algora.workers.memory import over_budget, pss_bytes
from algora.workers.pool import Pool
from algora.workers.spec import WorkerSpec

__all__ = ["PoolManager"]

logger = logging.getLogger(__name__)


class PoolManager:
    """Starts pools on demand with single flight: concurrent first calls start one pool.

    A failed start is reported to every caller waiting for it and is not cached: the next
    ``get`` tries again.
    """

    def __init__(
        self,
        data_dir: Path,
        backend: WorkerBackend,
        idle_seconds: float = 0.0,
        memory_budget: int | None = None,
    ) -> None:
        self._memory_budget = memory_budget
        """Bytes (PSS) the workers of all pools may hold; None: no limit."""
        self._data_dir = data_dir
        self._backend = backend
        self._pools: dict[str, Pool] = {}
        self._starting: dict[str, asyncio.Task[Pool]] = {}
        self._idle_seconds = idle_seconds
        self._last_used: dict[str, float] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._starts: dict[str, int] = {}
        """How many times each key's pool was started from none (cold starts, for metrics)."""
        self._retiring: dict[asyncio.Task[None], Pool] = {}
        """Retired pools still finishing their calls (see ``retire``)."""

    async def get(self, key: str, spec: WorkerSpec) -> Pool:
        """The running pool for ``key``, starting it from ``spec`` when there is none."""
        self._last_used[key] = time.monotonic()
        if self._reaper is None and (self._idle_seconds > 0 or spec.min_replicas == 0):
            self._reaper = asyncio.create_task(self._reap(), name="algora-pool-reaper")
        pool = self._pools.get(key)
        if pool is not None and pool.running:
            return pool
        task = self._starting.get(key)
        if task is None:
            if pool is not None:  # stopped behind our back: forget it
                del self._pools[key]
            task = asyncio.create_task(self._start(key, spec), name=f"algora-pool-start-{key}")
            self._starting[key] = task
        # Shielded: a caller that gives up does not cancel the start others wait for.
        return await asyncio.shield(task)

    async def _start(self, key: str, spec: WorkerSpec) -> Pool:
        pool = Pool(spec, self._backend, self._data_dir)
        try:
            await pool.start()
            self._pools[key] = pool
            self._starts[key] = self._starts.get(key, 0) + 1
        finally:
            self._starting.pop(key, None)
        try:
            await self.fit_budget(keep=key)
        except Exception:
            logger.exception("keeping the workers within the memory budget failed")
        return pool

    async def fit_budget(self, keep: str | None = None) -> list[str]:
        """Stop idle pools, least recently used first, while all the workers hold more memory
        than the budget (never ``keep``, the pool just started); return their keys."""
        if self._memory_budget is None:
            return []
        pools = dict(self._pools)
        pids = {key: pool.stats().pids for key, pool in pools.items()}
        usage = await asyncio.to_thread(lambda: {k: pss_bytes(p) for k, p in pids.items()})
        idle = {k for k, pool in self._pools.items() if k != keep and _idle(pool)}
        victims = over_budget(usage, self._last_used, idle, self._memory_budget)
        stopped = []
        for key in victims:
            pool = self._pools.get(key)
            if pool is None or not _idle(pool):  # a call came while memory was measured
                continue
            logger.info(
                "stopping idle pool %s (%d MiB): the workers hold more than the memory "
                "budget of %d MiB", key, usage[key] >> 20, self._memory_budget >> 20,
            )  # fmt: skip
            await self.stop(key)
            self._last_used.pop(key, None)
            stopped.append(key)
        return stopped

    async def adopt(self, key: str, pool: Pool) -> bool:
        """Serve ``key`` from ``pool``, a running pool started elsewhere (a publish's smoke
        test); False, leaving ``pool`` to its owner, when ``key`` has a pool already."""
        if not pool.running or key in self._starting:
            return False
        current = self._pools.get(key)
        if current is not None and current.running:
            return False
        self._pools[key] = pool
        self._starts[key] = self._starts.get(key, 0) + 1
        self._last_used[key] = time.monotonic()
        if self._reaper is None and (self._idle_seconds > 0 or pool.spec.min_replicas == 0):
            self._reaper = asyncio.create_task(self._reap(), name="algora-pool-reaper")
        await self.fit_budget(keep=key)
        return True

    def running(self, key: str) -> Pool | None:
        """The running pool for ``key``, without starting one (the hot path's fast check)."""
        pool = self._pools.get(key)
        if pool is None or not pool.running:
            return None
        self._last_used[key] = time.monotonic()
        return pool

    def starts(self) -> dict[str, int]:
        """How many times each key's pool has been started from none (a copy)."""
        return dict(self._starts)

    def pools(self) -> dict[str, Pool]:
        """The running pools by key (a copy), for readiness checks and metrics."""
        return dict(self._pools)

    async def stop(self, key: str) -> None:
        """Stop the pool for ``key`` if there is one (waiting for a start in progress)."""
        task = self._starting.get(key)
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(task)
        pool = self._pools.pop(key, None)
        if pool is not None:
            await pool.stop()

    async def retire(self, keys: list[str]) -> None:
        """Serve the next call for each key from a fresh pool (its workers see what changed in
        their spec, such as their model's secrets). Idle pools stop now; a busy one stops in
        the background once its calls in flight have finished."""
        for key in keys:
            task = self._starting.get(key)
            if task is not None:  # started from the old spec: wait, then retire it too
                with contextlib.suppress(Exception):
                    await asyncio.shield(task)
            pool = self._pools.pop(key, None)
            if pool is None:
                continue
            stats = pool.stats()
            if stats.in_flight == 0 and stats.queued == 0:
                await pool.stop()
            else:
                drain = asyncio.create_task(self._stop_drained(pool), name=f"algora-retire-{key}")
                self._retiring[drain] = pool
                drain.add_done_callback(lambda done: self._retiring.pop(done, None))

    @staticmethod
    async def _stop_drained(pool: Pool) -> None:
        while pool.running and (pool.stats().in_flight or pool.stats().queued):
            await asyncio.sleep(0.2)
        await pool.stop()

    def _idle_limit(self, pool: Pool) -> float | None:
        """Idle seconds after which ``pool`` is stopped; None: never for idleness. A version
        with ``min_replicas = 0`` scales to zero after its own ``scale_down_after``; one with
        ``min_replicas >= 1`` stays warm; the others follow the platform's ``idle_seconds``."""
        floor = pool.spec.min_replicas
        if floor is None:
            return self._idle_seconds if self._idle_seconds > 0 else None
        return pool.spec.scale_down_after if floor == 0 else None

    async def evict_idle(self) -> list[str]:
        """Stop the pools that have been idle past their limit; return their keys."""
        now = time.monotonic()
        evicted = []
        for key, pool in list(self._pools.items()):
            stats = pool.stats()
            idle = now - self._last_used.get(key, now)
            limit = self._idle_limit(pool)
            if limit is not None and idle >= limit and stats.in_flight == 0 and not stats.queued:
                evicted.append(key)
                await self.stop(key)
                self._last_used.pop(key, None)
        return evicted

    async def _reap(self) -> None:
        while True:
            limits = [self._idle_limit(p) for p in self._pools.values()]
            shortest = min((limit for limit in limits if limit is not None), default=4.0)
            await asyncio.sleep(max(0.1, min(shortest / 4, 60.0)))
            try:
                evicted = await self.evict_idle()
            except Exception:
                logger.exception("evicting idle pools failed")
                continue
            if evicted:
                logger.info("stopped %d idle pool(s): %s", len(evicted), ", ".join(evicted))

    async def stop_all(self) -> None:
        """Stop every pool, including those still starting."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        starting = list(self._starting.values())
        if starting:
            await asyncio.gather(*starting, return_exceptions=True)
        pools = list(self._pools.values())
        self._pools.clear()
        retiring = dict(self._retiring)
        await asyncio.gather(*(pool.stop() for pool in [*pools, *retiring.values()]))
        await asyncio.gather(*retiring, return_exceptions=True)


def _idle(pool: Pool) -> bool:
    stats = pool.stats()
    return pool.running and stats.in_flight == 0 and stats.queued == 0
