"""Built-in statistics: a model's calls per version over time, from the per-minute rollups
(:mod:`algora.registry.rollups`), no Prometheus needed.

:meth:`Statistics.series` is the one method the API, the CLI (through the API) and the web UI
read: a caller who may read the model, a window (``since`` to ``until``, UTC) and a step
(``1m``, ``1h`` or ``1d``) give each version's series of buckets, every bucket of the window
present (zeros where no call came), each with its calls, errors (by class), error rate, mean
latency and p50/p95/p99 latency estimated from the buckets of
:data:`~algora.registry.rollups.LATENCY_BOUNDS` (linear within a bucket, so an estimate is
never further from the truth than its bucket is wide).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Literal, TypeVar, cast

from sqlalchemy import select
from sqlalchemy.engine import Result
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.principals import Caller
from algora.db.shared_state import CallStats, ModelReport
from algora.db.tables import Version
from algora.errors import InvalidInput, VersionNotFound
from algora.registry.quality import Quality, QualitySums, quality, quality_sums, summed
from algora.registry.rollups import BUCKET_COLUMNS, ERROR_COLUMNS, LATENCY_BOUNDS
from algora.registry.service import Registry

__all__ = [
    "MOMENT_PATTERN",
    "AliasQuality",
    "ModelStats",
    "Series",
    "Statistics",
    "StatsPoint",
    "Step",
    "VersionStats",
    "Window",
    "WindowedSeries",
    "buckets_of",
    "floor_to",
    "parse_moment",
    "version_named",
    "window_rows",
    "window_total",
]

Step = Literal["1m", "1h", "1d"]
_STEPS: dict[str, timedelta] = {
    "1m": timedelta(minutes=1),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}
MAX_POINTS = {"1m": 1500, "1h": 1500, "1d": 400}
"""Buckets a series may hold by step: a day by the minute, two months by the hour, a year by
the day (each bucket is read as its minutes' rows, so the window is what costs)."""
_AGO = re.compile(r"^([0-9]{1,4})([smhdw])\Z")
MOMENT_PATTERN = re.compile(
    r"^(?:[0-9]{1,4}[smhdw]|(?:19[7-9]|20[0-9])[0-9]-"
    r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|"
    r"(?:0[13578]|1[02])-31)"
    r"(?:T(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9])?(?:Z|[+-](?:0[0-9]|1[0-3]):[0-5][0-9])?)?"
    r")\Z"
)
"""The ``since`` and ``until`` the API documents: a duration before now (at most 4 digits:
9999w), or an ISO 8601 date or time from 1970 to 2099, with an optional offset. (Any ISO 8601
time of those years is taken, the 29th of February too; the pattern leaves that one out.)"""
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)\Z")


@dataclass(frozen=True)
class StatsPoint:
    """One bucket of one version: ``start`` (UTC) to ``start`` plus the step."""

    start: datetime
    calls: int
    errors: int
    error_rate: float
    """errors / calls; 0 when there were no calls."""
    mean_ms: float | None
    """None when there were no calls; so are the percentiles."""
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    model_errors: int
    timeouts: int
    unavailable: int
    other_errors: int
    bytes_in: int
    bytes_out: int
    scored: int = 0
    """Answers scored by feedback (see :mod:`algora.registry.feedback`)."""
    accuracy: float | None = None
    """Correct / labelled feedback; None without any."""
    mean_abs_error: float | None = None
    """Mean absolute error of the answers given a value as feedback; None without any."""


@dataclass(frozen=True)
class VersionStats:
    version: str
    total: StatsPoint
    """The whole window as one bucket (``start``: the window's start)."""
    points: tuple[StatsPoint, ...]


@dataclass(frozen=True)
class Series:
    """What a series is of: the model (``owner/name``), the buckets' width and the window, from
    the first bucket's start to the last one's end."""

    model: str
    step: Step
    since: datetime
    until: datetime


@dataclass(frozen=True)
class ModelStats(Series):
    versions: tuple[VersionStats, ...]
    """The versions that were called in the window (or the one asked for), newest first."""
    aliases: tuple[AliasQuality, ...] = ()
    """Live accuracy of what each alias returned, for the calls with feedback in the window."""


@dataclass(frozen=True)
class AliasQuality:
    alias: str
    total: Quality
    points: tuple[Quality, ...]
    """One a bucket of the window, as the versions' points."""


def parse_moment(text: str | None, now: datetime) -> datetime | None:
    """``30m``, ``1h``, ``2d``, ``1w`` (that long before ``now``) or an ISO 8601 time (naive:
    UTC) as a naive UTC datetime; None for None or empty."""
    if not text:
        return None
    ago = _AGO.match(text)
    if ago is not None:
        return now - timedelta(**{_UNITS[ago[2]]: int(ago[1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or not 1970 <= moment.year < 2100:
        raise InvalidInput(
            f"'{text[:40]}' is not a time: use an ISO 8601 time from 1970 to 2099 "
            "(2026-01-31T12:00:00Z) or a duration before now (30m, 1h, 2d, 1w)"
        )
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def floor_to(moment: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1)
    return epoch + (moment - epoch) // step * step


def buckets_of(
    since: datetime | None, until: datetime | None, step: str
) -> tuple[timedelta, datetime, datetime, list[datetime]]:
    """The window's buckets: their width, the first's start, the last's end and every start,
    from ``since`` (default: 60 steps before ``until``) to ``until`` (default: now). Bad
    arguments raise InvalidInput (400)."""
    width = _STEPS.get(step)
    if width is None:
        raise InvalidInput(f"step '{step[:20]}' is not one of 1m, 1h, 1d")
    until = until or datetime.now(UTC).replace(tzinfo=None)
    since = since or until - 60 * width
    if since >= until:
        raise InvalidInput("since must come before until: widen the window")
    start, end = floor_to(since, width), floor_to(until - timedelta(microseconds=1), width) + width
    count = (end - start) // width
    if count > MAX_POINTS[step]:
        raise InvalidInput(
            f"{since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} by {step} is {count} buckets; "
            f"at most {MAX_POINTS[step]}: narrow the window or use a larger step"
        )
    return width, start, end, [start + i * width for i in range(count)]


@dataclass(frozen=True)
class Window:
    """A series' window, checked: the model's full name, the step and its ``width``, the first
    bucket's ``start``, the last one's ``end`` and every bucket's start."""

    model: str
    step: Step
    width: timedelta
    start: datetime
    end: datetime
    starts: list[datetime]

    def bucket(self, moment: datetime) -> datetime:
        """The start of the bucket ``moment`` falls in."""
        return floor_to(moment, self.width)


S = TypeVar("S")


class WindowedSeries(ABC, Generic[S]):
    """Reads a model's per-version minutes over a window (call statistics, model reports):
    :meth:`series` checks the window, the caller's right to read the model and the version
    asked for; a subclass's :meth:`collect` reads its table."""

    sessions: sessionmaker[Session]
    registry: Registry

    def series(
        self,
        caller: Caller,
        owner: str,
        name: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        step: str = "1m",
        version: str | None = None,
    ) -> S:
        """Each version's buckets from ``since`` (default: 60 steps before ``until``) to
        ``until`` (default: now), naive UTC datetimes; ``version`` (``1.2.3``) keeps one. The
        caller must be able to read the model; bad arguments raise InvalidInput (400)."""
        width, start, end, starts = buckets_of(since, until, step)
        window = Window(f"{owner}/{name}", cast(Step, step), width, start, end, starts)
        with self.sessions() as session:
            model = self.registry.require_model(session, caller, owner, name, "read")
            wanted = None
            if version is not None:
                wanted = version_named(session, model.id, version, window.model)
            return self.collect(session, model.id, wanted, window)

    @abstractmethod
    def collect(self, session: Session, model_id: int, wanted: Version | None, window: Window) -> S:
        """The series of ``model_id`` over ``window``: only ``wanted``'s when given."""


@dataclass(frozen=True)
class Statistics(WindowedSeries[ModelStats]):
    """Reads the rollups; each call opens its own session."""

    sessions: sessionmaker[Session]
    registry: Registry

    def collect(
        self, session: Session, model_id: int, wanted: Version | None, window: Window
    ) -> ModelStats:
        semvers = {wanted.id: wanted.semver} if wanted is not None else {}
        buckets: dict[int, dict[datetime, list[float]]] = {}
        start, end, starts = window.start, window.end, window.starts
        for row, row_version in window_rows(session, CallStats, model_id, start, end, wanted):
            semvers[row_version.id] = row_version.semver
            at = window.bucket(row.minute)
            _add(buckets.setdefault(row_version.id, {}).setdefault(at, _empty()), row)
        scores, by_alias = quality_sums(
            session,
            model_id,
            start,
            end,
            window.bucket,
            version_id=wanted.id if wanted is not None else None,
        )
        ordered = sorted(semvers, key=lambda v: _sort_key(semvers[v]), reverse=True)
        return ModelStats(
            model=window.model,
            step=window.step,
            since=start,
            until=end,
            versions=tuple(
                _version_stats(semvers[v], start, starts, buckets.get(v, {}), scores.get(v, {}))
                for v in ordered
            ),
            aliases=tuple(
                AliasQuality(
                    alias=alias,
                    total=quality(summed(sums)),
                    points=tuple(quality(sums.get(at)) for at in starts),
                )
                for alias, sums in sorted(by_alias.items())
            ),
        )


def window_rows(
    session: Session,
    table: type[CallStats] | type[ModelReport],
    model_id: int,
    start: datetime,
    end: datetime,
    wanted: Version | None,
) -> Result[Any, Version]:
    """The rows of ``table`` (a version's minutes) of ``model_id`` from ``start`` to ``end``,
    each with its version; only ``wanted``'s when given."""
    statement = (
        select(table, Version)
        .join(Version, Version.id == table.version_id)
        .where(table.model_id == model_id, table.minute >= start, table.minute < end)
    )
    if wanted is not None:
        statement = statement.where(table.version_id == wanted.id)
    return session.execute(statement)


def window_total(
    session: Session,
    model_id: int,
    version_ids: Sequence[int] | None,
    start: datetime,
    end: datetime,
) -> StatsPoint:
    """The calls of the model's versions (``version_ids``; None: all) from ``start`` to ``end``
    as one bucket, without feedback (the alerts read it: :mod:`algora.registry.signals`)."""
    statement = select(CallStats).where(
        CallStats.model_id == model_id, CallStats.minute >= start, CallStats.minute < end
    )
    if version_ids is not None:
        statement = statement.where(CallStats.version_id.in_(list(version_ids)))
    total = _empty()
    for row in session.scalars(statement):
        _add(total, row)
    return _point(start, total)


def version_named(session: Session, model_id: int, text: str, model: str) -> Version:
    """The version of ``model`` (its id, its name for the message) named exactly ``text``."""
    match = _SEMVER.match(text)
    found = None
    if match is not None:
        major, minor, patch = (int(part) for part in match.groups())
        found = session.scalars(
            select(Version).where(
                Version.model_id == model_id,
                Version.major == major,
                Version.minor == minor,
                Version.patch == patch,
            )
        ).first()
    if found is None:
        raise VersionNotFound(
            f"'{model}' has no version '{text[:40]}': name one exactly (1.2.3); "
            "`algora versions` lists them"
        )
    return found


# a bucket's sums: the counts of ``_FIELDS`` in order, then latency seconds and the buckets
_FIELDS = ("calls", *ERROR_COLUMNS, "bytes_in", "bytes_out", "latency_sum", *BUCKET_COLUMNS)
_LATENCY = _FIELDS.index("latency_sum")


def _empty() -> list[float]:
    return [0.0] * len(_FIELDS)


def _add(sums: list[float], row: CallStats) -> None:
    for index, field in enumerate(_FIELDS):
        sums[index] += getattr(row, field)


def _sort_key(semver: str) -> tuple[int, ...]:
    return tuple(int(part) for part in semver.split("."))


def _version_stats(
    semver: str,
    start: datetime,
    starts: Sequence[datetime],
    buckets: dict[datetime, list[float]],
    scores: dict[datetime, QualitySums],
) -> VersionStats:
    total = _empty()
    for sums in buckets.values():
        total = [a + b for a, b in zip(total, sums, strict=True)]
    points = tuple(_point(at, buckets.get(at) or _empty(), scores.get(at)) for at in starts)
    return VersionStats(version=semver, total=_point(start, total, summed(scores)), points=points)


def _point(start: datetime, sums: list[float], scores: QualitySums | None = None) -> StatsPoint:
    counts = dict(zip(_FIELDS, (int(value) for value in sums), strict=True))
    calls = counts["calls"]
    errors = sum(counts[name] for name in ERROR_COLUMNS)
    histogram = [counts[name] for name in BUCKET_COLUMNS]
    return StatsPoint(
        start=start,
        calls=calls,
        errors=errors,
        error_rate=errors / calls if calls else 0.0,
        mean_ms=sums[_LATENCY] / calls * 1000 if calls else None,
        p50_ms=percentile(histogram, 0.50),
        p95_ms=percentile(histogram, 0.95),
        p99_ms=percentile(histogram, 0.99),
        model_errors=counts["model_errors"],
        timeouts=counts["timeouts"],
        unavailable=counts["unavailable"],
        other_errors=counts["other_errors"],
        bytes_in=counts["bytes_in"],
        bytes_out=counts["bytes_out"],
        **vars(quality(scores)),
    )


def percentile(histogram: Sequence[int], quantile: float) -> float | None:
    """The ``quantile`` (0 to 1) of the latencies counted in ``histogram`` (one count per
    bucket of LATENCY_BOUNDS, then the slower ones), in milliseconds, interpolated linearly
    within its bucket; the slowest bucket has no upper bound, so its estimate is its lower."""
    total = sum(histogram)
    if total == 0:
        return None
    rank = quantile * total
    seen = 0
    for index, count in enumerate(histogram):
        if count and seen + count >= rank:
            lower = LATENCY_BOUNDS[index - 1] if index else 0.0
            if index == len(LATENCY_BOUNDS):
                return lower * 1000
            upper = LATENCY_BOUNDS[index]
            return (lower + (upper - lower) * (rank - seen) / count) * 1000
        seen += count
    return LATENCY_BOUNDS[-1] * 1000
