"""Algorithmia's APIs, so that its clients, ADK algorithms and git workflow work unchanged:
calls (``/v1/algo``), algorithms (``/v1/algorithms``), users and organizations, and the model
repositories under ``/git``. Algorithmia's names fold case (:mod:`.names`)."""

from __future__ import annotations

from fastapi import APIRouter

from algora.protocols.algorithmia import (
    accounts,
    algorithm_settings,
    calls,
    git_http,
    manage,
    reads,
)
from algora.protocols.algorithmia.names import AlgorithmiaNamesMiddleware

__all__ = ["AlgorithmiaNamesMiddleware", "router"]

router = APIRouter()
router.include_router(calls.router)
# Before the algorithm reads: /v1/algorithms/{id}/secrets would read as owner/name.
router.include_router(algorithm_settings.router)
router.include_router(reads.router)
router.include_router(manage.router)
router.include_router(git_http.router)
router.include_router(accounts.router)
