"""What every page of the web UI shares: the services, the templates, the static files, and
the error pages.

Pages are HTML all the way down, errors included: an error a service raises is rendered as a
page with its status and message (a request that is not signed in is sent to the sign-in page),
never as JSON or a traceback. Every answer carries a Content-Security-Policy that allows no
script, inline or not, and no framing.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from algora.auth.sessions import WebSessions
from algora.errors import AlgoraError, InvalidInput, NotFound, Unauthenticated
from algora.gateway.auditing import note_error
from algora.platform import Platform
from algora.registry.search import ModelSearch
from algora.web.markdown import render_markdown

__all__ = ["HEADERS", "Site", "error_page", "install_error_pages", "site_of"]

logger = logging.getLogger(__name__)

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_PAGE_HEADERS = {**HEADERS, "Cache-Control": "no-store"}
_STATIC = Path(__file__).parent / "static"
_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}


@dataclass(frozen=True)
class _Asset:
    body: bytes
    media_type: str
    etag: str


def _assets() -> dict[str, _Asset]:
    found = {}
    for path in sorted(_STATIC.iterdir()):
        media = _STATIC_TYPES.get(path.suffix)
        if path.is_file() and media is not None:
            body = path.read_bytes()
            found[path.name] = _Asset(body, media, f'"{hashlib.sha256(body).hexdigest()[:20]}"')
    return found


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else ""


class Site:
    """What every page needs: the platform's services, the UI's own, and the templates."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.sessions = WebSessions(platform.sessions, platform.authenticator)
        self.search = ModelSearch(platform.sessions, platform.registry, platform.store)
        self.assets = _assets()
        self.templates = Environment(
            loader=PackageLoader("algora.web", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["markdown"] = render_markdown
        self.templates.filters["when"] = _when

    def render(
        self,
        request: Request,
        template: str,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        """The page ``template`` with ``context``, and what every page shows: who is signed
        in, the form token, and where the UI and its stylesheet are."""
        ui = str(request.scope.get("root_path", "")).rstrip("/")
        css = self.assets["algora.css"].etag.strip('"')
        page = self.templates.get_template(template).render(
            ui=ui, css=f"{ui}/static/algora.css?v={css}", request_path=request.url.path,
            **context,
        )  # fmt: skip
        return HTMLResponse(page, status_code=status, headers=_PAGE_HEADERS)


def site_of(request: Request) -> Site:
    return cast(Site, request.app.state.site)


def error_page(request: Request, error: AlgoraError) -> Response:
    """The page an error shows (a GET that is not signed in goes to the sign-in page)."""
    note_error(request, error)
    if isinstance(error, Unauthenticated) and request.method in ("GET", "HEAD"):
        ui = str(request.scope.get("root_path", "")).rstrip("/")
        target = quote(request.url.path, safe="/")
        return RedirectResponse(f"{ui}/signin?next={target}", status_code=303, headers=HEADERS)
    return _problem(request, int(error.status), error.message)


def _problem(request: Request, status: int, message: str) -> Response:
    visitor = getattr(request.state, "visitor", None)
    return site_of(request).render(
        request, "error.html", status, status_text=_reason(status), message=message,
        visitor=visitor,
    )  # fmt: skip


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


async def _algora_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AlgoraError)  # registered for AlgoraError only
    return error_page(request, exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()
    )
    return error_page(request, InvalidInput(f"this page cannot be shown: {problems}"))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return error_page(request, NotFound("there is no such page: start from the catalog"))
    return _problem(request, exc.status_code, str(exc.detail))


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error in the web UI", exc_info=exc)
    return error_page(request, AlgoraError("internal error: the server logged the details"))


def install_error_pages(ui: FastAPI) -> None:
    """Render every error of ``ui`` as a page."""
    ui.add_exception_handler(AlgoraError, _algora_error)
    ui.add_exception_handler(RequestValidationError, _validation_error)
    ui.add_exception_handler(StarletteHTTPException, _http_error)
    ui.add_exception_handler(Exception, _unexpected_error)
