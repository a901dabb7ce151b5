"""One replica of a pool: a worker process, its channel, and what the pool knows of it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from algora.workers.backend import WorkerHandle
from algora.workers.channel import WorkerChannel

__all__ = ["Replica", "wake"]


@dataclass(slots=True, eq=False)
class Replica:
    """A worker the pool started: alive until it exits, busy while it holds a dispatch."""

    handle: WorkerHandle
    started_at: float
    channel: WorkerChannel | None = None
    alive: bool = field(default=True, init=False)
    busy: bool = field(default=False, init=False)
    timed_out: bool = field(default=False, init=False)
    waiter: asyncio.Future[None] | None = field(default=None, init=False)
    exited: asyncio.Task[int] = field(init=False)

    def __post_init__(self) -> None:
        self.exited = asyncio.ensure_future(_wait(self.handle, self.channel))


async def _wait(handle: WorkerHandle, channel: WorkerChannel | None) -> int:
    """The worker's exit status, once it has exited and its channel is closed."""
    try:
        return await handle.wait()
    finally:
        if channel is not None:
            await channel.close()


def wake(worker: Replica) -> None:
    """Let an idle replica's serving loop take the next call."""
    waiter = worker.waiter
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
