"""Adaptive batching for a model with ``predict_batch``: how many calls one dispatch may carry.

A free worker takes what is queued, up to the batch limit. With ``max_wait`` it waits up to that
long for the batch to fill (a batch of 1 under light load costs a whole dispatch). With a
latency target, the limit is chosen by an additive-increase, multiplicative-decrease controller
as Clipper's was: each dispatch that kept its oldest call within the target and was full raises
the limit by one, each that did not keep it cuts the limit by a tenth (at least one), between 1
and ``max_batch``. Batches never mix versions: each pool serves one version.
"""

from __future__ import annotations

import bisect
import math

__all__ = ["BATCH_BUCKETS", "BatchLimit"]

_DECREASE = 0.9
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
"""Upper bounds of the batch-size histogram (``sizes``); one more count past the last."""


class BatchLimit:
    """The current most calls per dispatch (``max_batch`` when there is no latency target)."""

    __slots__ = ("_ceiling", "_target", "sizes", "value")

    def __init__(self, max_batch: int, target_p99: float | None) -> None:
        self._ceiling = max(1, max_batch)
        self._target = target_p99
        self.value = self._ceiling if target_p99 is None else 1
        self.sizes = [0] * (len(BATCH_BUCKETS) + 1)
        """How many dispatches carried at most each of BATCH_BUCKETS calls (not cumulative)."""

    def observe(self, size: int, oldest_latency: float) -> None:
        """A dispatch of ``size`` calls ended ``oldest_latency`` seconds after its oldest call
        arrived."""
        self.sizes[bisect.bisect_left(BATCH_BUCKETS, size)] += 1
        if self._target is None:
            return
        if oldest_latency > self._target:
            self.value = max(1, min(self.value - 1, math.floor(self.value * _DECREASE)))
        elif size >= self.value:
            self.value = min(self._ceiling, self.value + 1)
