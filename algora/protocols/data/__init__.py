"""Hosted data, Algorithmia-compatible: ``/v1/data/...`` (collections, a model's own
``.algo`` space and a call's ``.session``) and ``/v1/connector/...`` (S3 connectors)."""

from __future__ import annotations

from fastapi import APIRouter

from algora.protocols.data import collections, connectors, model_spaces

__all__ = ["router"]

router = APIRouter()
router.include_router(model_spaces.router)  # data://.algo and .session, before data://owner
router.include_router(collections.router)
router.include_router(connectors.router)
