"""The /v2 routes stay out of the /api/v1 document, so they are checked here: each declares
its permission and its audit action, as every route must."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi.routing import APIRoute

from algora.app import create_app
from algora.gateway.auditing import declared_action
from algora.gateway.permissions import PERMISSION_KEY
from algora.settings import Settings


def _walk(routes: list[Any]) -> Iterator[APIRoute]:
    """Every route, inside the routers FastAPI keeps whole (as algora.gateway.methods does)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        router = getattr(route, "original_router", None)
        if router is not None:
            yield from _walk(router.routes)


def test_every_v2_route_declares_its_permission_and_audit_action(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    routes = [r for r in _walk(app.routes) if r.path.startswith("/v2")]
    assert {r.path for r in routes} == {
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{path:path}",
    }
    for route in routes:
        assert (route.openapi_extra or {}).get(PERMISSION_KEY), route.path
        assert declared_action(route) is not None, route.path
    assert not any(path.startswith("/v2") for path in app.openapi()["paths"])
