"""One replica of a pool: a worker process, its channel, and what the pool knows of it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from pathlib import Path

from algora.errors import ModelLoadFailed, WorkerDied
from algora.workers.backend import WorkerBackend, WorkerHandle
from algora.workers.channel import WorkerChannel
from algora.workers.reports import read_log_tail
from algora.workers.spec import ModelInfo, WorkerSpec

__all__ = ["Replica", "start_replica", "wake"]


@dataclass(slots=True, eq=False)
class Replica:
    """A worker the pool started: alive until it exits, busy while it holds a dispatch."""

    handle: WorkerHandle
    started_at: float
    channel: WorkerChannel | None = None
    alive: bool = field(default=True, init=False)
    busy: bool = field(default=False, init=False)
    timed_out: bool = field(default=False, init=False)
    retired: bool = field(default=False, init=False)
    """Set by the autoscaler: the replica leaves once it has finished its current call."""
    idle_since: float = field(default=0.0, init=False)
    waiter: asyncio.Future[None] | None = field(default=None, init=False)
    exited: asyncio.Task[int] = field(init=False)

    def __post_init__(self) -> None:
        self.idle_since = self.started_at
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


async def start_replica(
    spec: WorkerSpec, backend: WorkerBackend, data_dir: Path
) -> tuple[Replica, ModelInfo]:
    """Start one worker and wait for its ``ready``; raise ModelLoadFailed otherwise."""
    loop = asyncio.get_running_loop()
    base, channel = spec, None
    if spec.channel is not None:
        channel = await spec.channel()
        spec = replace(spec, env={**spec.env, **channel.env}, gateway_folder=channel.folder)
    try:
        handle = await backend.start(spec, data_dir)
    except BaseException:
        if channel is not None:
            await channel.close()
        raise
    worker = Replica(handle, loop.time(), channel)
    try:
        async with asyncio.timeout(base.start_timeout):
            header, _ = await handle.read_frame()
    except TimeoutError:
        handle.kill()
        await worker.exited
        raise _load_failed(
            base, f"the model did not load within {base.start_timeout:g}s", "TimeoutError", ""
        ) from None
    except WorkerDied:
        code = await worker.exited
        raise _load_failed(
            base, f"the worker exited with status {code} before the model loaded", "WorkerDied", ""
        ) from None
    except BaseException:
        handle.kill()
        await asyncio.shield(worker.exited)
        raise
    kind = header.get("type")
    if kind == "ready":
        if channel is not None:
            channel.serving(())  # loaded: idle until it serves a call
        return worker, ModelInfo.from_ready(header)
    handle.kill()
    await worker.exited
    if kind == "load_error":
        error = header.get("error")
        error = error if isinstance(error, dict) else {}
        raise _load_failed(
            base,
            str(error.get("message") or "the model failed to load"),
            str(error.get("error_type") or ""),
            str(error.get("stacktrace") or ""),
        )
    raise _load_failed(base, f"unexpected first message {kind!r}", "ProtocolError", "")


def _load_failed(
    spec: WorkerSpec, message: str, error_type: str, stacktrace: str
) -> ModelLoadFailed:
    details = {
        "error_type": error_type,
        "stacktrace": stacktrace,
        "log_tail": read_log_tail(spec.log_path),
    }
    return ModelLoadFailed(message, details=details)
