"""The publish smoke test: load the model in one worker, run its example input; then stop the
worker, or hand it over to serve the new version (``HandOff``)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar, get_args

from algora.errors import InvalidInput
from algora.workers.backend import WorkerBackend
from algora.workers.pool import Pool
from algora.workers.spec import CallRequest, CallResult, ContentType, ModelInfo, WorkerSpec

__all__ = ["HandOff", "smoke_test"]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class HandOff:
    """Where a passing smoke test's worker goes on serving its version, so that the version is
    warm the moment it becomes ready and its first call does not start a worker again.

    Set on the publisher by the platform (``warm_on_publish``); the smoke test then runs on the
    gateway's event loop, where its pool can live on.
    """

    loop: Callable[[], asyncio.AbstractEventLoop | None]
    """The gateway's event loop, once it serves; None before (the worker is then stopped)."""
    adopt: Callable[[int, Pool], Awaitable[bool]]
    """Keep the pool as version ``id``'s (on the loop); False: it was not taken, stop it."""
    release: Callable[[int], None]
    """The version failed after all: stop the pool kept for it (from any thread)."""

    def run(self, test: Coroutine[Any, Any, T]) -> T:
        """Run ``test`` on the gateway's loop when it serves, else on a loop of its own.
        Blocking: called from a build's thread."""
        loop = self.loop()
        if loop is None or loop.is_closed():
            return asyncio.run(test)
        return asyncio.run_coroutine_threadsafe(test, loop).result()


async def smoke_test(
    spec: WorkerSpec,
    backend: WorkerBackend,
    data_dir: Path,
    example: tuple[str, bytes] | None,
    timeout: float,
    origin: object | None = None,
    keep: Callable[[Pool], Awaitable[bool]] | None = None,
) -> tuple[ModelInfo, CallResult | None]:
    """Start a one-replica pool, call ``example`` (content type, payload) if given, and stop
    the pool, unless the test passed and ``keep(pool)`` took it.

    ``origin``: whom the example call acts for, for the worker's channel (``spec.channel``).

    Raises ModelLoadFailed when the model does not load, and the call's own error (ModelError,
    CallTimeout, WorkerDied...) when the example fails.
    """
    content_type: ContentType | None = None
    if example is not None:
        for known in get_args(ContentType):
            if example[0] == known:
                content_type = known
        if content_type is None:
            raise InvalidInput(f"unknown example content type {example[0]!r}")
    pool = Pool(dataclasses.replace(spec, replicas=1), backend, data_dir)
    info = await pool.start()
    kept = False
    try:
        result = None
        if example is not None and content_type is not None:
            request = CallRequest("smoke-test", content_type, example[1], timeout, origin=origin)
            result = await pool.call(request)
        kept = keep is not None and await keep(pool)
        return info, result
    finally:
        if not kept:
            await pool.stop()
