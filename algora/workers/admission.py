"""Backpressure for one pool: refuse at once the calls that could only time out in its queue.

A queue that takes every call hides overload until callers time out: a 2-second model with
one replica and 200 callers answered 13 in 30 s and then 171 timeouts. The pool instead
estimates how long a new call would wait (the calls ahead of it, in dispatches of up to a batch
per worker, times the recent time a dispatch takes) and refuses, with 503 and ``Retry-After``,
a call whose wait would pass its own deadline, or any call past the queue's bound.
"""

from __future__ import annotations

import math

from algora.errors import Overloaded

__all__ = ["ServiceTime", "admit"]

_WEIGHT = 0.2
"""Weight of the newest dispatch in the moving average of dispatch time."""
_HEADROOM = 0.8
"""Share of its timeout a call's expected wait may take: the estimate is an average, and a
call admitted at the edge would as likely time out as not."""


class ServiceTime:
    """How long one dispatch (one call, or one batch) takes on a worker, recently."""

    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds: float | None = None

    def observe(self, seconds: float) -> None:
        previous = self.seconds
        self.seconds = seconds if previous is None else previous + _WEIGHT * (seconds - previous)

    def expected_wait(self, ahead: int, workers: int, per_dispatch: int) -> float:
        """Seconds a call with ``ahead`` calls before it waits for a worker; 0 when unknown."""
        if self.seconds is None or ahead <= 0:
            return 0.0
        waves = math.ceil(ahead / (max(1, workers) * max(1, per_dispatch)))
        return waves * self.seconds


def admit(*, waiting: int, max_queue: int, expected_wait: float, timeout: float) -> None:
    """Raise Overloaded when the queue is full or the wait (its own dispatch included) would
    take most of the call's timeout."""
    retry_after = max(1.0, expected_wait)
    if waiting >= max_queue:
        raise Overloaded(
            f"{waiting} calls are already waiting for this model: retry in a moment",
            details={"queued": waiting, "max_queue": max_queue, "retry_after": retry_after},
        )
    if expected_wait > timeout * _HEADROOM:
        raise Overloaded(
            f"this model is busy: a call would wait about {expected_wait:.1f} s for it, past "
            f"its {timeout:g} s timeout; retry later or with a longer timeout",
            details={
                "queued": waiting,
                "expected_wait": round(expected_wait, 3),
                "retry_after": retry_after,
            },
        )
