"""One replica of a pool: a worker process, its channel, and what the pool knows of it."""

from __future__ import annotations

import asyncio

from algora.workers.backend import WorkerHandle
from algora.workers.channel import WorkerChannel

__all__ = ["Replica", "wake"]


class Replica:
    """A worker the pool started: alive until it exits, busy while it holds a dispatch."""

    __slots__ = (
        "alive", "busy", "channel", "exited", "handle", "started_at", "timed_out", "waiter",
    )  # fmt: skip

    def __init__(
        self, handle: WorkerHandle, started_at: float, channel: WorkerChannel | None = None
    ) -> None:
        self.handle = handle
        self.started_at = started_at
        self.channel = channel
        self.alive = True
        self.busy = False
        self.timed_out = False
        self.waiter: asyncio.Future[None] | None = None
        self.exited: asyncio.Task[int] = asyncio.ensure_future(_wait(handle, channel))


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
