"""Algora's own management API under ``/api/v1``: models, versions, keys, principals, grants,
aliases and the audit log."""

from __future__ import annotations

from fastapi import APIRouter

from algora.protocols.native import access, aliases, audit, keys, models, quality, stats

__all__ = ["router"]

router = APIRouter()
for _part in (models, keys, access, audit, aliases, stats, quality):
    router.include_router(_part.router)
