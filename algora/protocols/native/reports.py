"""``GET /api/v1/models/{owner}/{name}/reports``: what a model's code reported about its calls
(``algora.report``, Algorithmia's insights), per version and name over time (see
:mod:`algora.registry.reports`); ``models:read`` and read rights on the model."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from algora.auth.principals import Caller
from algora.gateway.openapi import UtcDateTime
from algora.gateway.permissions import Needs, PermissionRoute
from algora.protocols.native.stats import WINDOW_QUERY, windowed
from algora.protocols.routing import Op, add_routes, one
from algora.protocols.wire import FromView
from algora.registry.stats import Step

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", route_class=PermissionRoute, tags=["statistics"])
ReadModels = Annotated[Caller, Depends(Needs("models:read"))]


class ReportedOut(FromView):
    start: UtcDateTime
    count: int
    mean: float | None
    min: float | None
    max: float | None


class ReportedVersionOut(FromView):
    version: str
    name: str
    total: ReportedOut
    points: list[ReportedOut]


class ReportedSeriesOut(FromView):
    """Each version and name reported in the window, every bucket of the window present."""

    model: str
    step: Step
    since: UtcDateTime
    until: UtcDateTime
    series: list[ReportedVersionOut]


add_routes(
    router,
    lambda platform: platform.reports,
    Op(
        "GET /models/{owner}/{name}/reports",
        "model_reports",
        windowed,
        ReadModels,
        one(ReportedSeriesOut),
        "reports.read",
        query=WINDOW_QUERY,
        summary="What a model's code reported (algora.report, insights) per version and name",
    ),
)
