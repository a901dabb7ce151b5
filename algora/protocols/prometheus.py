"""``GET /metrics``: the Prometheus exposition of the gateway (scope ``metrics:read``).

Prometheus scrapes it with a key: ``authorization: {credentials: KEY}`` in its scrape config
sends ``Authorization: Bearer KEY``. The text format by default, OpenMetrics when the scraper
asks for it.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from algora.auth.principals import Caller
from algora.gateway.deps import platform_of
from algora.gateway.permissions import Needs, PermissionRoute, audited

__all__ = ["router"]

router = APIRouter(tags=["metrics"], route_class=PermissionRoute)

_EXPOSITION = {"schema": {"type": "string"}}


@router.get(
    "/metrics",
    summary="Prometheus metrics: requests, model calls, pools, workers (scope metrics:read)",
    response_class=Response,
    responses={
        200: {
            "description": "The metrics in Prometheus' text format, or OpenMetrics on request",
            "content": {
                "text/plain": _EXPOSITION,
                "application/openmetrics-text": _EXPOSITION,
            },
        }
    },
    openapi_extra=audited("metrics.read"),
)
async def metrics(
    request: Request, _caller: Annotated[Caller, Depends(Needs("metrics:read"))]
) -> Response:
    platform = platform_of(request)
    body, content_type = await asyncio.to_thread(
        platform.metrics.render, request.headers.get("accept")
    )
    return Response(body, media_type=content_type)
