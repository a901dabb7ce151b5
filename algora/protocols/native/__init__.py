"""Algora's own management API under ``/api/v1``: models, versions, keys, principals, grants,
aliases and the audit log."""

from __future__ import annotations

from fastapi import APIRouter

from algora.protocols.native import access, aliases, audit, keys, models

__all__ = ["router"]

router = APIRouter()
router.include_router(models.router)
router.include_router(keys.router)
router.include_router(access.router)
router.include_router(audit.router)
router.include_router(aliases.router)
