"""Algora's own management API under ``/api/v1``: models, versions, keys, principals, grants,
aliases, the audit log, statistics, usage and quotas."""

from __future__ import annotations

from fastapi import APIRouter

from algora.protocols.native import (
    access,
    alerts,
    aliases,
    audit,
    drift,
    keys,
    models,
    quality,
    reports,
    sampling,
    stats,
    usage,
)

__all__ = ["router"]

router = APIRouter()
for _part in (
    models,
    keys,
    access,
    audit,
    aliases,
    stats,
    quality,
    reports,
    sampling,
    usage,
    drift,
    alerts,
):
    router.include_router(_part.router)
