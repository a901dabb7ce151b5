"""``create_ui``: the web UI's application, mounted at ``/ui`` by ``algora.app``."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from algora.errors import NotFound
from algora.gateway.permissions import PUBLIC, declare
from algora.platform import Platform
from algora.web import access, admin, audit, data, keys, pages, promotions, signin
from algora.web.site import HEADERS, Site, install_error_pages, site_of

__all__ = ["create_ui", "front_door"]


def create_ui(platform: Platform) -> FastAPI:
    ui = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, redirect_slashes=False)
    ui.state.site = Site(platform)
    ui.state.platform = platform  # what the gateway's request helpers read (platform_of)
    install_error_pages(ui)
    ui.include_router(signin.router)
    ui.include_router(pages.router)
    ui.include_router(keys.router)
    ui.include_router(promotions.router)
    ui.include_router(data.router)
    ui.include_router(audit.router)
    ui.include_router(admin.router)
    ui.include_router(access.router)
    ui.add_api_route(
        "/static/{name}", static, methods=["GET"], openapi_extra=declare(PUBLIC, audit="ui.static")
    )
    return ui


async def static(request: Request, name: str) -> Response:
    """A stylesheet or image, cached a day by browsers and revalidated by its ETag."""
    asset = site_of(request).assets.get(name)
    if asset is None:
        raise NotFound(f"no static file '{name}'")
    headers = {**HEADERS, "ETag": asset.etag, "Cache-Control": "public, max-age=86400"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


front_door = APIRouter()
"""``/ui`` itself, which the mount at ``/ui`` does not match: included by the gateway."""


@front_door.get(
    "/ui", include_in_schema=False, openapi_extra=declare(PUBLIC, audit="ui.front_door")
)
async def ui_root() -> Response:
    return RedirectResponse("/ui/", status_code=308, headers=HEADERS)
