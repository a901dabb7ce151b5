"""Shadow copies: an alias with a shadow version (see :mod:`algora.registry.routing`) sends it
a copy of each call, beside the call itself. The copy's answer is discarded and its failures
never reach the caller; its outcome and latency are counted under the shadow version (in the
statistics, by the call path's dispatch, and in ``/metrics``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from algora.db.tables import Model, Version
from algora.errors import AlgoraError
from algora.gateway.metrics import Metrics

__all__ = ["MAX_IN_FLIGHT", "Shadows"]

logger = logging.getLogger(__name__)

MAX_IN_FLIGHT = 64
"""Shadow copies in flight on one gateway; past it, calls go without a copy (a copy is best
effort: it never queues behind a slow shadow)."""


class Shadows:
    """Sends copies of calls to shadow versions in the background, on the serving loop."""

    def __init__(self, metrics: Metrics | None) -> None:
        self._metrics = metrics
        self._in_flight: set[asyncio.Task[None]] = set()

    def send(
        self, dispatch: Callable[[], Awaitable[object]], model: Model, version: Version, alias: str
    ) -> None:
        """Run ``dispatch`` (the copy of a call to ``version``) in the background."""
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            return
        task = asyncio.create_task(self._run(dispatch, model, version, alias))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _run(
        self, dispatch: Callable[[], Awaitable[object]], model: Model, version: Version, alias: str
    ) -> None:
        started = time.perf_counter()
        outcome = "ok"
        try:
            await dispatch()
        except AlgoraError as error:  # the shadow's own: never the caller's
            outcome = error.code
        except Exception:
            logger.exception("the shadow copy of a call to %s failed", version.semver)
            outcome = "internal_error"
        if self._metrics is not None:
            seconds = time.perf_counter() - started
            resource = f"{model.owner.name}/{model.name}"
            self._metrics.observe_call(resource, version.semver, alias, outcome, seconds)
