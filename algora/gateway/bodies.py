"""Request bodies: no byte read before the key is checked, none past the cap, none too slowly.

Plain ASGI, inside the audit middleware. For a request that carries a body it

1. authenticates the key (the API key; HTTP Basic on the git routes; the model's credential on
   a worker's channel) before the route may read a byte: the cache first, the database in a
   thread on a miss. Every route with a body needs a key (only ``/healthz`` and ``/readyz`` are
   public, and they take none), except a model's reports on its own worker's channel
   (``/insights``, which Algorithmia's client posts without one: the channel is the credential);
2. checks the declared ``Content-Length`` against the cap of the route's family (see
   :func:`body_cap`), and counts the bytes that arrive against it;
3. gives the body :attr:`~algora.settings.Settings.body_read_timeout` seconds between chunks.

A refusal is not answered here: the route's own attempt to read the body raises it
(``Unauthenticated``, ``PayloadTooLarge``, ``RequestTimeout``), so that each protocol renders it
in its own envelope, and a route that refuses first (most authenticate before they read) is
never reached by it. Either way the answer closes the connection, so that the body left unread
is never drained. A request whose path is not UTF-8 once percent-decoded is refused here with
400: the server would otherwise read it with U+FFFD in place of the bad bytes.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import unquote_to_bytes

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from algora.auth.keys import basic_authorization
from algora.auth.principals import Authenticator
from algora.errors import (
    AlgoraError,
    InvalidInput,
    PayloadTooLarge,
    RequestTimeout,
    error_body,
)
from algora.gateway.channels import channel_of, from_worker
from algora.settings import Settings

__all__ = ["BodyGuardMiddleware", "body_cap", "path_is_utf8"]

_WEB_UI = "/ui/"
_ARCHIVE_UPLOAD = re.compile(r"/api/v1/models/[^/]+/[^/]+/versions/?")


def body_cap(settings: Settings, method: str, path: str) -> int:
    """The most bytes a request to ``path`` may send, by route family."""
    if path.startswith(("/v1/algo/", "/v2/models/")):
        return settings.max_request_bytes
    if path.startswith("/git/") or (method == "POST" and _ARCHIVE_UPLOAD.fullmatch(path)):
        return settings.max_archive_bytes
    if path.startswith(("/v1/data/", "/v1/connector/")):
        return settings.max_data_file_bytes
    return settings.max_api_body_bytes


def _request_headers(scope: Scope) -> tuple[bool, int | None, str | None]:
    """Whether the request has a body, its declared length (None when chunked) and its
    ``Authorization`` header, in one pass over the headers (this runs on every call)."""
    length: int | None = None
    has_body = False
    authorization: str | None = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = int(value) if value.isdigit() else None
            has_body = has_body or length != 0
        elif name == b"transfer-encoding":
            has_body = True
        elif name == b"authorization":
            authorization = value.decode("latin-1")
    return has_body, length, authorization


def path_is_utf8(scope: Scope) -> bool:
    raw = scope.get("raw_path")
    if not isinstance(raw, bytes) or (raw.isascii() and b"%" not in raw):
        return True  # nothing to decode: the common case, answered without decoding
    try:
        unquote_to_bytes(raw.split(b"?", 1)[0]).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class _Body:
    """The ``receive`` a route reads its body from, and whether the connection must close."""

    def __init__(self, receive: Receive, cap: int, timeout: float) -> None:
        self._receive = receive
        self._cap = cap
        self._timeout = timeout
        self._size = 0
        self._done = False
        self.refusal: AlgoraError | None = None

    def refuse(self, error: AlgoraError) -> None:
        self.refusal = error

    async def receive(self) -> Message:
        if self.refusal is not None:
            raise self.refusal
        if self._done:
            return await self._receive()  # only http.disconnect is left to come
        try:
            async with asyncio.timeout(self._timeout):  # no task per chunk, as wait_for makes
                message = await self._receive()
        except TimeoutError:
            self.refusal = RequestTimeout(
                f"the request body stalled: no byte arrived for {self._timeout:g} seconds"
            )
            raise self.refusal from None
        if message["type"] == "http.request":
            self._size += len(message.get("body", b""))
            if self._size > self._cap:
                self.refusal = PayloadTooLarge(
                    f"the request body is larger than the {self._cap}-byte limit"
                )
                raise self.refusal
            self._done = not message.get("more_body", False)
        return message

    def closing(self, send: Send) -> Send:
        """``send``, adding ``Connection: close`` to an answer given to a refused body."""

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and self.refusal is not None:
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        return send_closing


_REPORTS = "/insights"


class BodyGuardMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings, authenticator: Authenticator) -> None:
        self.app = app
        self.settings = settings
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not path_is_utf8(scope):
            error = InvalidInput("the request path is not UTF-8 once percent-decoded")
            response = JSONResponse(error_body(error), status_code=int(error.status))
            await response(scope, receive, send)
            return
        has_body, declared, authorization = _request_headers(scope)
        if not has_body:
            await self.app(scope, receive, send)
            return
        cap = body_cap(self.settings, scope["method"], scope["path"])
        body = _Body(receive, cap, self.settings.body_read_timeout)
        try:
            # The web UI's forms carry no key: its routes check their session cookie (or, to
            # sign in, the key in the form) and the form's CSRF token before reading further.
            if not scope["path"].startswith(_WEB_UI):
                await self._authenticate(scope, authorization)
        except AlgoraError as error:  # Unauthenticated, or a model's credential out of date
            body.refuse(error)
        if body.refusal is None and declared is not None and declared > cap:
            body.refuse(PayloadTooLarge(f"the request body is larger than the {cap}-byte limit"))
        await self.app(scope, body.receive, body.closing(send))

    async def _authenticate(self, scope: Scope, header: str | None) -> None:
        if scope["path"].startswith("/git/"):
            header = basic_authorization(header)[0]
        channel = channel_of(HTTPConnection(scope)) if from_worker(scope) else None
        if channel is not None and (scope["path"] == _REPORTS or channel.caller_for(header)):
            return  # a model's reports need no key: the channel says whose code sends them
        if self.authenticator.cached(header) is not None:
            return
        client = scope.get("client")
        address = str(client[0]) if client else None
        await asyncio.to_thread(self.authenticator.authenticate, header, address)
