"""Signing in and out, who is signed in, and the forms' CSRF tokens.

Signing in exchanges an API key for a session (:mod:`algora.auth.sessions`) whose token a
cookie carries: ``HttpOnly``, ``SameSite=Strict``, ``Secure`` when the page came over https, and
sent only to ``/ui``. Each form holds a CSRF token: the session's (derived from its token) once
signed in, and before that, on the sign-in form, a random one that a cookie repeats. A POST
without the right one is refused (403) before it does anything.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from algora.auth.delegation import accountable_key_id
from algora.auth.policy import require_scope
from algora.auth.principals import Caller
from algora.auth.scopes import has_scope
from algora.auth.sessions import SESSION_LIFETIME, csrf_token
from algora.errors import AlgoraError, BadRequest, PermissionDenied, Unauthenticated
from algora.gateway.auditing import note_error, trail_of
from algora.gateway.deps import read_body
from algora.gateway.permissions import AUTHENTICATED, PUBLIC, declare
from algora.web.site import HEADERS, site_of

__all__ = ["SESSION_COOKIE", "SignedIn", "Visitor", "form_of", "router", "see_other"]

SESSION_COOKIE = "algora_session"
_SIGNIN_COOKIE = "algora_signin"
"""The sign-in form's CSRF token, repeated in a cookie (there is no session yet)."""


@dataclass(frozen=True)
class Visitor:
    """The signed-in principal: its caller (the session key's rights) and its form token."""

    caller: Caller
    token: str

    @property
    def csrf(self) -> str:
        return csrf_token(self.token)

    def may(self, scope: str) -> bool:
        """Whether the session's key holds ``scope`` (what the navigation offers)."""
        return has_scope(self.caller.scopes, scope, is_admin=self.caller.is_admin)


class SignedIn:
    """The dependency of a page that needs a session whose key holds ``scope``; ``write=True``
    also takes a token from the key's rate limit, as the API's management writes do."""

    def __init__(self, scope: str = AUTHENTICATED, *, write: bool = False) -> None:
        self.scope = scope
        self.write = write

    async def __call__(self, request: Request) -> Visitor:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            raise Unauthenticated("sign in with an API key to see this page")
        caller = await asyncio.to_thread(site_of(request).sessions.caller, token)
        trail_of(request).caller = caller
        visitor = Visitor(caller, token)
        request.state.visitor = visitor
        if self.scope != AUTHENTICATED:
            require_scope(caller, self.scope)
        if self.write:
            site_of(request).platform.limiter.check(accountable_key_id(caller), None, caller.limits)
        return visitor


async def form_of(request: Request, expected_csrf: str | None) -> dict[str, str]:
    """The fields of a posted form, once its CSRF token is the one expected (403 if not)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    parsed: dict[str, list[str]] = {}
    if media == "application/x-www-form-urlencoded":  # anything else holds no CSRF token
        limit = site_of(request).platform.settings.max_api_body_bytes
        body = await read_body(request, limit)
        try:
            parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("the form could not be read: send it from its page") from None
    fields = {name: values[-1] for name, values in parsed.items()}
    sent = fields.pop("csrf", "")
    if not expected_csrf or not hmac.compare_digest(sent.encode(), expected_csrf.encode()):
        raise PermissionDenied(
            "the form was sent without its valid CSRF token: reload the page and send it again"
        )
    return fields


def see_other(request: Request, path: str) -> RedirectResponse:
    """303 to ``path`` of the UI (after a form is handled, so reloading does not resend it)."""
    ui = str(request.scope.get("root_path", "")).rstrip("/")
    return RedirectResponse(f"{ui}{path}", status_code=303, headers=HEADERS)


def _secure(request: Request) -> bool:
    """Whether the browser reached us over https, here or at a proxy that says so. Anyone may
    send ``X-Forwarded-Proto``, but it can only add ``Secure`` to their own cookie."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",", 1)[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def _cookie(
    response: Response, request: Request, name: str, value: str = "", max_age: int = 0
) -> None:
    """Set a cookie of the UI (``max_age`` 0: delete it): for ``/ui`` only, out of scripts'
    reach, never sent with another site's requests, and over TLS only when we were reached so."""
    path = str(request.scope.get("root_path", "")).rstrip("/") or "/"
    response.set_cookie(
        name, value, max_age=max_age, path=path, httponly=True, samesite="strict",
        secure=_secure(request),
    )  # fmt: skip


def _next_page(value: str | None, ui: str) -> str:
    """Where to go after signing in: a page of the UI, never another site."""
    if value and value.startswith(f"{ui}/") and not value.startswith("//") and "\\" not in value:
        return value
    return f"{ui}/"


router = APIRouter()


@router.get("/signin", openapi_extra=declare(PUBLIC, audit="ui.signin_page"))
async def signin_page(request: Request, next: str | None = None) -> Response:
    return _signin_form(request, next)


def _signin_form(
    request: Request, next_page: str | None, error: str | None = None, status: int = 200
) -> Response:
    token = request.cookies.get(_SIGNIN_COOKIE) or secrets.token_urlsafe(32)
    response = site_of(request).render(
        request, "signin.html", status, csrf=token, next=next_page or "", error=error
    )
    _cookie(response, request, _SIGNIN_COOKIE, token, max_age=3600)
    return response


@router.post("/signin", openapi_extra=declare(PUBLIC, audit="ui.signin"))
async def signin(request: Request) -> Response:
    fields = await form_of(request, request.cookies.get(_SIGNIN_COOKIE))
    ui = str(request.scope.get("root_path", "")).rstrip("/")
    target = _next_page(fields.get("next"), ui)
    key = fields.get("key", "").strip()
    if not key:
        return _signin_form(request, target, "enter an API key", 400)
    address = request.client.host if request.client else None
    try:
        opened = await asyncio.to_thread(site_of(request).sessions.sign_in, key, address)
    except AlgoraError as error:
        note_error(request, error)
        return _signin_form(request, target, error.message, int(error.status))
    trail_of(request).caller = opened.caller
    response = RedirectResponse(target, status_code=303, headers=HEADERS)
    lifetime = int(SESSION_LIFETIME.total_seconds())
    _cookie(response, request, SESSION_COOKIE, opened.token, max_age=lifetime)
    _cookie(response, request, _SIGNIN_COOKIE)  # spent
    return response


Session = Annotated[Visitor, Depends(SignedIn())]


@router.post("/signout", openapi_extra=declare(AUTHENTICATED, audit="ui.signout"))
async def signout(request: Request, visitor: Session) -> Response:
    await form_of(request, visitor.csrf)
    await asyncio.to_thread(site_of(request).sessions.sign_out, visitor.token)
    response = see_other(request, "/signin")
    _cookie(response, request, SESSION_COOKIE)
    return response
