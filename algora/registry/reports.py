"""What models report about themselves: named numbers (a confidence, a count of faces found, a
score), sent by model code during a call with ``algora.report(name, value)`` or Algorithmia's
``client.report_insights({...})``, and aggregated per version, minute and name like the call
statistics (count, sum, least, greatest; written as :mod:`algora.registry.accumulating` does).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from algora.db.shared_state import ModelReport
from algora.db.tables import Version
from algora.errors import InvalidInput
from algora.registry.accumulating import Accumulator, add_rows, additive_upsert
from algora.registry.service import Registry
from algora.registry.stats import Series, Window, WindowedSeries, window_rows

__all__ = ["MAX_NAMES", "ModelReports", "Reported", "ReportedSeries", "ReportedVersion"]

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}\Z")
MAX_NAMES = 50
"""Distinct names one version may report (each is a row a minute): bounded, like metric labels."""


class _Tally:
    __slots__ = ("count", "high", "low", "model_id", "total")

    def __init__(self, model_id: int, value: float) -> None:
        self.model_id = model_id
        self.count, self.total, self.low, self.high = 1, value, value, value

    @classmethod
    def of(cls, model_id: int, count: int, total: float, low: float, high: float) -> _Tally:
        tally = cls(model_id, low)
        tally.count, tally.total, tally.high = count, total, high
        return tally

    def add(self, other: _Tally) -> None:
        self.count += other.count
        self.total += other.total
        self.low = min(self.low, other.low)
        self.high = max(self.high, other.high)


@dataclass(frozen=True)
class Reported:
    """A name's values in one bucket (or the whole window): None without any."""

    start: datetime
    count: int
    mean: float | None
    min: float | None
    max: float | None


@dataclass(frozen=True)
class ReportedVersion:
    version: str
    name: str
    total: Reported
    points: tuple[Reported, ...]


@dataclass(frozen=True)
class ReportedSeries(Series):
    series: tuple[ReportedVersion, ...]


class ModelReports(Accumulator[tuple[int, int, str], _Tally], WindowedSeries[ReportedSeries]):
    """Counts reported values per version, minute and name; writes them to ``model_reports``."""

    what = "model reports"

    def __init__(self, sessions: sessionmaker[Session], registry: Registry) -> None:
        super().__init__()
        self.sessions = sessions
        self.registry = registry
        self._names: dict[int, set[str]] = {}

    def record(self, model_id: int, version_id: int, values: Mapping[str, Any]) -> None:
        """Add ``values`` (name -> number) reported by ``version_id``'s code; raise InvalidInput
        (and add none) for a bad name or value, or one name too many. On the serving loop."""
        numbers = {name: _number(name, value) for name, value in values.items()}
        known = self._names.setdefault(version_id, set())
        new = numbers.keys() - known
        if len(known) + len(new) > MAX_NAMES:
            raise InvalidInput(
                f"a version may report at most {MAX_NAMES} names: report fewer, or values under "
                "names it already uses"
            )
        known |= new
        minute = int(time.time()) // 60
        for name, value in numbers.items():
            key = (version_id, minute, name)
            tally = self._pending.get(key)
            if tally is None:
                self._pending[key] = _Tally(model_id, value)
            else:
                tally.add(_Tally(model_id, value))

    def write(self, pending: dict[tuple[int, int, str], _Tally]) -> None:
        rows = [
            {
                "version_id": version_id,
                "minute": datetime.fromtimestamp(minute * 60, UTC).replace(tzinfo=None),
                "name": name,
                "model_id": tally.model_id,
                "count": tally.count,
                "total": tally.total,
                "minimum": tally.low,
                "maximum": tally.high,
            }
            for (version_id, minute, name), tally in pending.items()
        ]
        with self.sessions() as session:
            # a version that is gone: nothing to count it under
            add_rows(session, _upsert(session), rows)

    def collect(
        self, session: Session, model_id: int, wanted: Version | None, window: Window
    ) -> ReportedSeries:
        """Each version's reported names, bucketed like the statistics (same window, steps and
        rights: see :class:`~algora.registry.stats.WindowedSeries`)."""
        sums: dict[tuple[str, str], dict[datetime, _Tally]] = {}
        rows = window_rows(session, ModelReport, model_id, window.start, window.end, wanted)
        for row, row_version in rows:
            at = window.bucket(row.minute)
            tally = _Tally.of(model_id, row.count, row.total, row.minimum, row.maximum)
            buckets = sums.setdefault((row_version.semver, row.name), {})
            if at in buckets:
                buckets[at].add(tally)
            else:
                buckets[at] = tally
        ordered = sorted(sums, key=lambda key: (_sort_key(key[0]), key[1]), reverse=True)
        return ReportedSeries(
            model=window.model,
            step=window.step,
            since=window.start,
            until=window.end,
            series=tuple(
                _reported_version(
                    semver, report, window.start, window.starts, sums[(semver, report)]
                )
                for semver, report in ordered
            ),
        )


def _number(name: str, value: Any) -> float:
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidInput(
            f"'{str(name)[:64]}' is not a report name: a letter or _, then up to 63 letters, "
            "digits or _ . : -"
        )
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"report '{name}' must be a finite number, not {str(value)[:40]!r}")
    return float(value)


def _sort_key(semver: str) -> tuple[int, ...]:
    return tuple(int(part) for part in semver.split("."))


def _reported(start: datetime, tally: _Tally | None) -> Reported:
    if tally is None:
        return Reported(start, 0, None, None, None)
    return Reported(start, tally.count, tally.total / tally.count, tally.low, tally.high)


def _reported_version(
    semver: str, name: str, start: datetime, starts: list[datetime], buckets: dict[datetime, _Tally]
) -> ReportedVersion:
    total: _Tally | None = None
    for tally in buckets.values():
        if total is None:
            total = _Tally.of(tally.model_id, tally.count, tally.total, tally.low, tally.high)
        else:
            total.add(tally)
    points = tuple(_reported(at, buckets.get(at)) for at in starts)
    return ReportedVersion(semver, name, _reported(start, total), points)


def _upsert(session: Session) -> Any:
    return additive_upsert(
        session,
        ModelReport,
        ("version_id", "minute", "name"),
        ("count", "total"),
        {"minimum": "least", "maximum": "greatest"},
    )
