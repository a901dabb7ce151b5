"""``/healthz`` (the process answers) and ``/readyz`` (the platform can serve: truthful)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from algora.gateway.deps import platform_of
from algora.gateway.permissions import PUBLIC, declare
from algora.platform import Platform

__all__ = ["readiness_problems", "router"]

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    summary="Liveness: no authentication",
    openapi_extra=declare(PUBLIC, audit="health.live"),
)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: registry, store and worker pools; no authentication",
    openapi_extra=declare(PUBLIC, audit="health.ready"),
)
async def readyz(request: Request) -> JSONResponse:
    problems = await readiness_problems(platform_of(request))
    if problems:
        return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ready"})


async def readiness_problems(platform: Platform) -> list[str]:
    """What keeps the platform from serving (empty: ready): the registry, the store, and any
    pool without a live worker. The one truth of /readyz and the protocols' own readiness."""
    problems = await asyncio.to_thread(platform.check_ready)
    problems.extend(
        f"pool {key} has no live worker"
        for key, pool in platform.pools.pools().items()
        if not pool.healthy
    )
    return problems
