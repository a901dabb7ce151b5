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
    insights,
    manage,
    reads,
)
from algora.protocols.algorithmia.names import AlgorithmiaNamesMiddleware

__all__ = ["AlgorithmiaNamesMiddleware", "router"]

router = APIRouter()
# The settings before the algorithm reads: /v1/algorithms/{id}/secrets would read as owner/name.
for _part in (calls, algorithm_settings, reads, manage, git_http, accounts, insights):
    router.include_router(_part.router)
