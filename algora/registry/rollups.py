"""Per-minute rollups of every version's calls: counted in memory, added to the registry.

The call path hands each answered (or failed) dispatch to :meth:`Rollups.record`: a dict
lookup and a few integer additions, no lock, no I/O. What was counted is written every few
seconds (see :mod:`algora.registry.accumulating`) as one additive upsert
(``INSERT ... ON CONFLICT DO UPDATE SET calls = calls + excluded.calls``, which SQLite and
PostgreSQL both speak), so several gateways on one registry add to the same rows.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from algora.db.shared_state import CallStats
from algora.errors import CallTimeout, ModelError, Unavailable
from algora.registry.accumulating import Accumulator, add_rows, additive_upsert
from algora.registry.records import CallRecords

__all__ = [
    "BUCKET_COLUMNS",
    "ERROR_COLUMNS",
    "LATENCY_BOUNDS",
    "Rollups",
    "outcome_of",
]

logger = logging.getLogger(__name__)

LATENCY_BOUNDS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
"""Upper bounds (seconds) of the latency buckets; a last bucket holds what is slower."""
BUCKET_COLUMNS = (
    "le_1ms", "le_2_5ms", "le_5ms", "le_10ms", "le_25ms", "le_50ms", "le_100ms", "le_250ms",
    "le_500ms", "le_1s", "le_2_5s", "le_5s", "le_10s", "le_30s", "le_inf",
)  # fmt: skip
ERROR_COLUMNS = ("model_errors", "timeouts", "unavailable", "other_errors")
"""The outcome classes of failed calls, in the order :func:`outcome_of` numbers them (from 1)."""

_COUNTS = ("calls", *ERROR_COLUMNS, "bytes_in", "bytes_out", *BUCKET_COLUMNS)
_BYTES_IN = 1 + len(ERROR_COLUMNS)
_FIRST_BUCKET = _BYTES_IN + 2
_ADDED = (*_COUNTS, "latency_sum")


def outcome_of(error: BaseException | None) -> int:
    """0 for an answer, else the failure's class: 1 the model raised, 2 timed out, 3 no worker
    could take it (overloaded, died, could not load), 4 anything else."""
    if error is None:
        return 0
    if isinstance(error, ModelError):
        return 1
    if isinstance(error, CallTimeout):
        return 2
    if isinstance(error, Unavailable):
        return 3
    return 4


class _Tally:
    __slots__ = ("counts", "latency", "model_id")

    def __init__(self, model_id: int) -> None:
        self.model_id = model_id
        self.counts = [0] * len(_COUNTS)
        self.latency = 0.0

    def add(self, other: _Tally) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.latency += other.latency


Pending = dict[tuple[int, int], _Tally]
"""(version id, minute since the epoch) -> what was counted."""


class Rollups(Accumulator[tuple[int, int], _Tally]):
    """Counts calls per version and minute; writes them to ``call_stats``."""

    what = "call statistics"

    def __init__(self, sessions: sessionmaker[Session], records: CallRecords | None = None) -> None:
        super().__init__()
        self._sessions = sessions
        self._records = records
        """Written with the counts (see :mod:`algora.registry.records`)."""

    def record(
        self,
        model_id: int,
        version_id: int,
        outcome: int,
        seconds: float,
        bytes_in: int,
        bytes_out: int,
    ) -> None:
        """Count one call (``outcome`` from :func:`outcome_of`). On the serving loop only."""
        key = (version_id, int(time.time()) // 60)
        tally = self._pending.get(key)
        if tally is None:
            tally = self._pending[key] = _Tally(model_id)
        counts = tally.counts
        counts[0] += 1
        if outcome:
            counts[outcome] += 1
        counts[_BYTES_IN] += bytes_in
        counts[_BYTES_IN + 1] += bytes_out
        counts[_FIRST_BUCKET + bisect.bisect_left(LATENCY_BOUNDS, seconds)] += 1
        tally.latency += seconds

    async def flush(self) -> None:
        """Write the call records, then what was counted so far (see the base class)."""
        if self._records is not None:
            try:
                await asyncio.to_thread(self._records.write)
            except Exception:
                logger.warning("could not write call records; will retry", exc_info=True)
        await super().flush()

    def write(self, pending: Pending) -> None:
        """Add ``pending`` to the registry's rows (blocking)."""
        rows = list(_rows(pending.items()))
        with self._sessions() as session:
            if not add_rows(session, _upsert(session), rows):
                # a version that is gone: nothing left to count it under
                logger.warning("dropped statistics of %d unknown version-minute(s)", len(rows))


def _rows(items: Iterable[tuple[tuple[int, int], _Tally]]) -> Iterable[dict[str, Any]]:
    for (version_id, minute), tally in items:
        yield {
            "version_id": version_id,
            "minute": datetime.fromtimestamp(minute * 60, UTC).replace(tzinfo=None),
            "model_id": tally.model_id,
            "latency_sum": tally.latency,
            **dict(zip(_COUNTS, tally.counts, strict=True)),
        }


def _upsert(session: Session) -> Any:
    return additive_upsert(session, CallStats, ("version_id", "minute"), _ADDED)
