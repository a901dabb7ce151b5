"""``GET /api/v1/models/{owner}/{name}/stats``: a model's calls per version over time (see
:mod:`algora.registry.stats`); ``models:read`` and read rights on the model."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from algora.auth.principals import Caller
from algora.gateway.openapi import UtcDateTime
from algora.gateway.permissions import Needs, PermissionRoute
from algora.protocols.routing import Op, add_routes, one
from algora.protocols.wire import FromView
from algora.registry.stats import MOMENT_PATTERN, Step, parse_moment

__all__ = ["WINDOW_QUERY", "moment_query", "router", "windowed"]

router = APIRouter(prefix="/api/v1", route_class=PermissionRoute, tags=["statistics"])
T_co = TypeVar("T_co", covariant=True)
ReadModels = Annotated[Caller, Depends(Needs("models:read"))]
_WHEN = "an ISO 8601 time (UTC unless it says), or a duration before now: 30m, 6h, 2d, 1w"
# the forms the service takes, as JSON Schema writes a pattern (it parses them itself, to say
# what is wrong with one it cannot take)
_MOMENT = {"pattern": MOMENT_PATTERN.pattern.replace("\\Z", "$")}


def moment_query(what: str) -> tuple[Any, None]:
    """A query parameter that takes a moment (``what``: From, To), absent by default."""
    description = f"{what}: {_WHEN}."
    query = Query(max_length=40, description=description, json_schema_extra=_MOMENT)
    return Annotated[str | None, query], None


class StatsPointOut(FromView):
    start: UtcDateTime
    calls: int
    errors: int
    error_rate: float
    mean_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    model_errors: int
    timeouts: int
    unavailable: int
    other_errors: int
    bytes_in: int
    bytes_out: int
    scored: int = Field(description="Answers scored by ground-truth feedback (POST /feedback).")
    accuracy: float | None = Field(description="Correct / labelled feedback; null without any.")
    mean_abs_error: float | None = Field(
        description="Mean absolute error of the answers given a value; null without any."
    )


class QualityOut(FromView):
    scored: int
    accuracy: float | None
    mean_abs_error: float | None


class StatsAliasOut(FromView):
    """Live accuracy of what an alias returned (its shadow's answers count under the shadow's
    version), for calls in the window that got feedback."""

    alias: str
    total: QualityOut
    points: list[QualityOut]


class StatsVersionOut(FromView):
    version: str
    total: StatsPointOut
    points: list[StatsPointOut]


class ModelStatsOut(FromView):
    """Each version called in the window, newest first; every bucket of the window present."""

    model: str
    step: Step
    since: UtcDateTime
    until: UtcDateTime
    versions: list[StatsVersionOut]
    aliases: list[StatsAliasOut]


class _Windowed(Protocol[T_co]):
    def series(
        self,
        caller: Caller,
        owner: str,
        name: str,
        *,
        since: datetime | None,
        until: datetime | None,
        step: str,
        version: str | None,
    ) -> T_co: ...


def windowed(
    service: _Windowed[T_co],
    caller: Caller,
    owner: str,
    name: str,
    since: str | None,
    until: str | None,
    step: Step,
    version: str | None,
) -> T_co:
    """A route's call of ``service.series`` over the window its query names (see
    :data:`WINDOW_QUERY`)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return service.series(
        caller,
        owner,
        name,
        since=parse_moment(since, now),
        until=parse_moment(until, now),
        step=step,
        version=version,
    )


WINDOW_QUERY: dict[str, tuple[Any, Any]] = {
    "since": moment_query("From"),
    "until": moment_query("To"),
    "step": (Annotated[Step, Query(description="The buckets' width.")], "1m"),
    "version": (
        Annotated[str | None, Query(max_length=40, description="Only this one (1.2.3).")],
        None,
    ),
}
"""The query of a route that reads a model's series: its window, step and version."""


add_routes(
    router,
    lambda platform: platform.statistics,
    Op(
        "GET /models/{owner}/{name}/stats",
        "model_stats",
        windowed,
        ReadModels,
        one(ModelStatsOut),
        "stats.read",
        query=WINDOW_QUERY,
        summary="A model's calls, errors and latency (p50/p95/p99) per version over time",
    ),
)
