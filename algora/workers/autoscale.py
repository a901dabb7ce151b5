"""Autoscaling one pool between its floor and ``max_replicas``, on the calls it holds.

Every tick the autoscaler compares the calls in the pool (waiting and running) with what its
replicas should hold (``target_in_flight`` each). Demand above that for ``SUSTAINED`` seconds
starts one more replica (one at a time, up to ``max_replicas``); a replica above the floor that
has been idle for ``scale_down_after`` seconds is retired after its current call. Scaling to
zero is the pool manager's: a version with ``min_replicas = 0`` has its whole pool stopped once
it has been idle that long, and started again by the next call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from algora.workers.spec import WorkerSpec

__all__ = ["SUSTAINED", "TICK", "Autoscaler", "Load", "floor_of", "scales"]

logger = logging.getLogger(__name__)

TICK = 0.1
"""Seconds between two looks at the pool."""
SUSTAINED = 0.5
"""Seconds demand must stay above the replicas' target before one more replica starts."""


@dataclass(frozen=True)
class Load:
    replicas: int
    """Replicas alive or starting."""
    demand: int
    """Calls waiting or running."""


def floor_of(spec: WorkerSpec) -> int:
    """The fewest replicas a running pool keeps (the manager takes a pool to zero)."""
    if spec.min_replicas is None:
        return spec.replicas
    return max(1, spec.min_replicas)


def scales(spec: WorkerSpec) -> bool:
    """Whether the pool's replica count may change while it runs."""
    return (spec.max_replicas or spec.replicas) > floor_of(spec) or floor_of(spec) < spec.replicas


class Autoscaler:
    """Watches a pool through ``load`` and acts through ``grow`` and ``shrink``."""

    def __init__(
        self,
        spec: WorkerSpec,
        *,
        load: Callable[[], Load],
        grow: Callable[[], Awaitable[None]],
        shrink: Callable[[float, int], int],
    ) -> None:
        self._spec = spec
        self._load = load
        self._grow = grow
        self._shrink = shrink
        self._ceiling = max(spec.max_replicas or spec.replicas, spec.replicas)
        self._floor = floor_of(spec)
        self._pressed_since: float | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TICK)
            try:
                await self.tick(loop.time())
            except Exception:
                logger.exception("autoscaling %s failed", self._spec.entrypoint)

    async def tick(self, now: float) -> None:
        load = self._load()
        if load.demand > self._spec.target_in_flight * load.replicas:
            if self._pressed_since is None:
                self._pressed_since = now
            elif now - self._pressed_since >= SUSTAINED and load.replicas < self._ceiling:
                self._pressed_since = now  # the next step waits for sustained demand again
                await self._grow()
            return
        self._pressed_since = None
        if load.replicas > self._floor:
            self._shrink(self._spec.scale_down_after, load.replicas - self._floor)
