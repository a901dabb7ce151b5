"""The per-minute rollups and the statistics service on each registry database: gateways add
to the same rows, series are bucketed by step, percentiles are estimated within their bucket."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.principals import Caller
from algora.db.shared_state import CallStats
from algora.db.tables import Principal, Version
from algora.errors import (
    CallTimeout,
    InvalidInput,
    ModelError,
    ModelNotFound,
    Overloaded,
    RateLimited,
    VersionNotFound,
)
from algora.registry.reports import ModelReports
from algora.registry.rollups import BUCKET_COLUMNS, ERROR_COLUMNS, Rollups, outcome_of
from algora.registry.service import Registry
from algora.registry.stats import Statistics, parse_moment, percentile

from ..conftest import DATABASES, database_url
from .conftest import migrated, owned_model


@dataclass
class Registered:
    sessions: sessionmaker[Session]
    statistics: Statistics
    owner: Caller
    stranger: Caller
    model_id: int
    versions: dict[str, int]


@pytest.fixture(params=DATABASES)
def registered(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registered]:
    """olga/m with versions 1.0.0 and 1.1.0 on a fresh registry; sam owns nothing."""
    with (
        database_url(request.param) as url,
        migrated(url, tmp_path) as sessions,
        sessions() as session,
    ):
        olga, model = owned_model(session, "olga", "m")
        sam = Principal(name="sam")
        session.add(sam)
        session.flush()
        rows = {
            f"1.{minor}.0": Version(
                model_id=model.id, major=1, minor=minor, patch=0, status="ready"
            )
            for minor in (0, 1)
        }
        session.add_all(rows.values())
        session.commit()
        yield Registered(
            sessions,
            Statistics(sessions, Registry(sessions)),
            Caller(olga.id, "olga", False, "k1", ("*",)),
            Caller(sam.id, "sam", False, "k2", ("*",)),
            model.id,
            {semver: row.id for semver, row in rows.items()},
        )


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def test_two_gateways_add_to_the_same_rows(registered: Registered) -> None:
    one, other = Rollups(registered.sessions), Rollups(registered.sessions)
    version = registered.versions["1.0.0"]
    for rollups in (one, other):
        rollups.record(registered.model_id, version, 0, 0.003, 10, 20)
        rollups.record(registered.model_id, version, outcome_of(ModelError("x")), 0.2, 5, 0)
        rollups.write(rollups.take())
    rollups = Rollups(registered.sessions)
    rollups.record(registered.model_id, version, outcome_of(CallTimeout("t")), 40.0, 1, 0)
    rollups.write(rollups.take())
    stats = registered.statistics.series(
        registered.owner, "olga", "m", since=_now() - timedelta(hours=1)
    )
    [series] = stats.versions
    total = series.total
    assert series.version == "1.0.0"
    assert (total.calls, total.errors, total.model_errors, total.timeouts) == (5, 3, 2, 1)
    assert (total.bytes_in, total.bytes_out) == (31, 40)
    assert total.mean_ms == pytest.approx((0.003 * 2 + 0.2 * 2 + 40.0) / 5 * 1000)
    assert 100 < total.p50_ms <= 250  # type: ignore[operator]  # the 3rd of 5 is a 0.2 s call
    assert total.p99_ms == 30_000  # the slowest bucket has no upper bound: its lower one


def test_two_gateways_add_to_the_same_report_rows(registered: Registered) -> None:
    registry = Registry(registered.sessions)
    version = registered.versions["1.0.0"]
    for values in ({"score": 0.5}, {"score": 0.9, "faces": 3}, {"score": 0.1}):
        reports = ModelReports(registered.sessions, registry)  # each write another gateway's
        reports.record(registered.model_id, version, values)
        reports.write(reports.take())
    series = ModelReports(registered.sessions, registry).series(
        registered.owner, "olga", "m", since=_now() - timedelta(hours=1)
    )
    totals = {(row.version, row.name): row.total for row in series.series}
    score = totals[("1.0.0", "score")]
    assert (score.count, score.min, score.max) == (3, 0.1, 0.9)
    assert score.mean == pytest.approx(0.5)
    assert totals[("1.0.0", "faces")].count == 1


def test_the_outcome_classes() -> None:
    assert [
        outcome_of(error)
        for error in (None, ModelError("m"), CallTimeout("t"), Overloaded("o"), RateLimited("r"))
    ] == [0, 1, 2, 3, 4]
    assert ERROR_COLUMNS[outcome_of(Overloaded("o")) - 1] == "unavailable"


def _row(registered: Registered, semver: str, minute: datetime, calls: int, errors: int) -> None:
    with registered.sessions() as session:
        counts = dict.fromkeys((*ERROR_COLUMNS, *BUCKET_COLUMNS, "bytes_in", "bytes_out"), 0)
        session.add(
            CallStats(
                version_id=registered.versions[semver],
                minute=minute,
                model_id=registered.model_id,
                calls=calls,
                latency_sum=calls * 0.01,
                **{**counts, "model_errors": errors, "le_10ms": calls},
            )
        )
        session.commit()


def test_series_are_bucketed_by_step_and_filled_with_zeros(registered: Registered) -> None:
    day = datetime(2026, 5, 1)
    _row(registered, "1.0.0", day + timedelta(hours=1, minutes=5), 4, 1)
    _row(registered, "1.0.0", day + timedelta(hours=1, minutes=59), 6, 0)
    _row(registered, "1.1.0", day + timedelta(hours=3), 2, 2)
    _row(registered, "1.1.0", day + timedelta(days=2), 100, 0)  # outside the window
    stats = registered.statistics.series(
        registered.owner, "olga", "m", since=day, until=day + timedelta(hours=4), step="1h"
    )
    assert (stats.since, stats.until) == (day, day + timedelta(hours=4))
    assert [v.version for v in stats.versions] == ["1.1.0", "1.0.0"]  # newest first
    newer, older = stats.versions
    assert [p.calls for p in older.points] == [0, 10, 0, 0]
    assert [p.calls for p in newer.points] == [0, 0, 0, 2]
    hour = older.points[1]
    assert (hour.errors, hour.error_rate, hour.mean_ms) == (1, 0.1, pytest.approx(10.0))
    assert 5 < hour.p50_ms <= 10  # type: ignore[operator]
    assert older.points[0].p50_ms is None and older.points[0].error_rate == 0
    assert newer.total.error_rate == 1.0
    only = registered.statistics.series(
        registered.owner, "olga", "m", since=day, until=day + timedelta(days=3), step="1d",
        version="1.1.0",
    )  # fmt: skip
    assert [v.version for v in only.versions] == ["1.1.0"]
    assert [p.calls for p in only.versions[0].points] == [2, 0, 100]


def test_bad_windows_unknown_versions_and_strangers_are_refused(registered: Registered) -> None:
    series = registered.statistics.series
    now = _now()
    with pytest.raises(InvalidInput, match="not one of 1m, 1h, 1d"):
        series(registered.owner, "olga", "m", step="5m")
    with pytest.raises(InvalidInput, match="since must come before until"):
        series(registered.owner, "olga", "m", since=now, until=now - timedelta(hours=1))
    with pytest.raises(InvalidInput, match="at most 1500"):
        series(registered.owner, "olga", "m", since=now - timedelta(days=2))
    with pytest.raises(InvalidInput, match="at most 400"):
        series(registered.owner, "olga", "m", since=now - timedelta(days=500), step="1d")
    for version in ("2.0.0", "1.x", "latest"):
        with pytest.raises(VersionNotFound):
            series(registered.owner, "olga", "m", version=version)
    with pytest.raises(ModelNotFound):
        series(registered.stranger, "olga", "m")
    assert series(registered.owner, "olga", "m").versions == ()


def test_moments_and_percentiles() -> None:
    now = datetime(2026, 5, 1, 12)
    assert parse_moment("90m", now) == now - timedelta(minutes=90)
    assert parse_moment("2d", now) == now - timedelta(days=2)
    assert parse_moment("2026-05-01T10:00:00+02:00", now) == datetime(2026, 5, 1, 8)
    assert parse_moment("2026-05-01T10:00:00", now) == datetime(2026, 5, 1, 10)
    assert parse_moment(None, now) is None
    with pytest.raises(InvalidInput, match="not a time"):
        parse_moment("last tuesday", now)
    empty = [0] * len(BUCKET_COLUMNS)
    assert percentile(empty, 0.5) is None
    one_bucket = [*empty]
    one_bucket[2] = 10  # 2.5 to 5 ms
    assert percentile(one_bucket, 0.5) == pytest.approx(3.75)
    assert percentile(one_bucket, 1.0) == pytest.approx(5.0)
    split = [*empty]
    split[0], split[6] = 90, 10  # 90 under 1 ms, 10 from 50 to 100 ms
    assert percentile(split, 0.5) == pytest.approx(0.5 / 0.9)
    assert 50 < percentile(split, 0.95) <= 100  # type: ignore[operator]
