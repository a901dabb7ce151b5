"""Host and Origin checks: plain ASGI, before any route runs.

- **Host**: a request whose ``Host`` header names none of ``Settings.allowed_hosts`` (nor the
  bind address) gets 400 ``bad_host``. A browser tricked by DNS rebinding into sending its
  requests for ``evil.example`` to this gateway keeps sending ``Host: evil.example``, so a
  page can neither read nor change anything here through a name the gateway does not own.
  ``/healthz`` and ``/readyz`` are exempt: orchestrators probe them by address.
- **Origin**: a state-changing request (any method but GET, HEAD and OPTIONS) that carries an
  ``Origin`` header gets 403 ``forbidden_origin`` unless that origin is the gateway's own (its
  ``host[:port]`` is the request's ``Host``) or one of ``Settings.allowed_origins``. Browsers
  send ``Origin`` on every cross-origin POST; API clients, the SDK and the CLI send none.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from algora.errors import AlgoraError, BadHost, ForbiddenOrigin, error_body
from algora.gateway.auditing import note_error
from algora.gateway.channels import from_worker
from algora.settings import Settings

__all__ = ["OriginMiddleware", "host_name"]

_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_EXEMPT = frozenset({"/healthz", "/readyz"})


def host_name(host: str) -> str:
    """``Host`` header value -> lower-case host name without port or IPv6 brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def _header(scope: Scope, name: bytes) -> str | None:
    values = [value for key, value in scope.get("headers", ()) if key == name]
    if len(values) != 1:
        return None if not values else ""  # two Host or Origin headers: never trusted
    return str(values[0].decode("latin-1"))


class OriginMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        hosts = {host_name(h) for h in settings.allowed_hosts}
        self._any_host = "*" in hosts
        self._hosts = hosts | {host_name(settings.host)}
        self._origins = frozenset(o.strip().rstrip("/").lower() for o in settings.allowed_origins)

    def refusal(self, scope: Scope) -> AlgoraError | None:
        """Why the request is refused by its Host or Origin; None when it is not."""
        host = _header(scope, b"host")
        # A model's requests come on its worker's socket, from no browser, to 127.0.0.1:PORT.
        checked = scope["path"] not in _EXEMPT and not self._any_host and not from_worker(scope)
        if checked and (not host or host_name(host) not in self._hosts):
            return BadHost("the Host header names a host this server does not answer to")
        if scope["method"] in _SAFE:
            return None
        origin = _header(scope, b"origin")
        if origin is None:
            return None
        origin = origin.strip().rstrip("/").lower()
        if origin in self._origins:
            return None
        scheme, sep, netloc = origin.partition("://")
        if sep and scheme in ("http", "https") and host and netloc == host.strip().lower():
            return None
        return ForbiddenOrigin(
            "requests that change something are refused from web pages of other origins"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        error = self.refusal(scope)
        if error is None:
            await self.app(scope, receive, send)
            return
        note_error(HTTPConnection(scope), error)  # the audit row (a refusal is audited too)
        response = JSONResponse(error_body(error), status_code=int(error.status))
        await response(scope, receive, send)
