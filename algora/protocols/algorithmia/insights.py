"""``POST /insights``: what model code reports about itself (Algorithmia's
``client.report_insights({...})``, Algora's ``algora.report(name, value)``), added to its
version's reports (:mod:`algora.registry.reports`).

Served only on a worker's own channel: the channel says which version's code reports, so no key
is needed there (Algorithmia's client sends none). From outside, a key is authenticated and told
the route is not there.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request, Response

from algora.errors import InvalidInput, NotFound
from algora.gateway.channels import channel_of
from algora.gateway.deps import current_caller, platform_of
from algora.gateway.permissions import AUTHENTICATED, PermissionRoute, declare

__all__ = ["router"]

router = APIRouter(route_class=PermissionRoute, tags=["algorithms"])
_MAX_VALUES = 50


@router.post(
    "/insights",
    summary="Model code reports named numbers about its call (only from inside a model)",
    status_code=204,
    openapi_extra=declare(AUTHENTICATED, audit="model.report"),
)
async def report_insights(
    request: Request,
    insights: dict[str, Any] = Body(  # noqa: B008 (FastAPI's way to declare a body)
        description='Names and numbers: {"faces_found": 3, "confidence": 0.92}',
        max_length=_MAX_VALUES,
    ),
) -> Response:
    channel = channel_of(request)
    if channel is None:
        await current_caller(request)  # a stranger is told no more than that a key is needed
        raise NotFound(
            "insights are reported by model code from inside a call (algora.report or "
            "Algorithmia's report_insights): POST /insights is served only on a worker's channel"
        )
    if channel.version_id is None:
        raise InvalidInput("a model reports during its calls, not during its publish smoke test")
    platform_of(request).reports.record(channel.model.id, channel.version_id, insights)
    return Response(status_code=204)
