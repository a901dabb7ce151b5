"""The call lane: a warm ``POST /v1/algo/{owner}/{name}[/{spec}]`` served in one plain ASGI step.

A model call is most of a gateway's traffic, and the general stack (four middlewares, FastAPI's
routing, dependency solving and exception wrappers) costs far more than the call's own rules.
The lane sits outside that stack and answers the calls whose every step it can take from memory:
the key is in the authenticator's cache, the Host and Origin pass, the body is small and
declared, and the query asks for nothing but ``timeout``. It then runs exactly what the route
in :mod:`.calls` runs (the one :class:`~algora.gateway.calls.CallService`: scope, ACL, rate
limit, resolution, dispatch), renders the same envelope, and commits the same audit row through
the same builder before it answers. Anything else goes, untouched, down the general stack: a key
not yet cached, a worker's channel, ``stdout``/``output`` options, a chunked or large body, a bad
path. So the lane changes how fast a call is answered, never what is answered.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any
from urllib.parse import unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from algora.audit.log import AuditLog
from algora.auth.principals import Authenticator
from algora.errors import AlgoraError, RequestTimeout, error_body
from algora.gateway.auditing import (
    CURRENT_TRAIL,
    AuditTrail,
    RequestHeaders,
    request_row,
    send_unavailable,
)
from algora.gateway.bodies import path_is_utf8
from algora.gateway.calls import Call, CallService, new_request_id
from algora.gateway.channels import from_worker
from algora.gateway.hangups import CLIENT_GONE_STATUS, ClientGone, unless_hung_up
from algora.gateway.metrics import Metrics
from algora.gateway.origin import OriginMiddleware
from algora.protocols.algorithmia.calls import (
    error_response,
    input_kind,
    parse_timeout,
    success_body,
)
from algora.settings import Settings

__all__ = ["LANE_BODY_BYTES", "CallLane"]

LANE_BODY_BYTES = 256 * 1024
"""Larger bodies take the general stack (their reading is guarded chunk by chunk there)."""
_PREFIX = "/v1/algo/"
_JSON_HEADERS = [(b"content-type", b"application/json")]

logger = logging.getLogger(__name__)


class _Disconnected(Exception):
    """The client hung up before its body arrived."""


class CallLane:
    """Outermost ASGI app: warm calls here, everything else to ``app`` (see the module)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        authenticator: Authenticator,
        calls: CallService,
        audit: AuditLog,
        metrics: Metrics | None = None,
    ) -> None:
        self.app = app
        self._authenticator = authenticator
        self._calls = calls
        self._audit = audit
        self._metrics = metrics
        self._origin = OriginMiddleware(app, settings)
        self._read_timeout = settings.body_read_timeout
        self._cap = min(LANE_BODY_BYTES, settings.max_request_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            if path.startswith(_PREFIX) and await self._serve(scope, receive, send, path):
                return
        await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, path: str) -> bool:
        """Answer the call and return True, or return False having touched nothing."""
        parts = path[len(_PREFIX) :].split("/")
        if len(parts) not in (2, 3) or "" in parts or not path_is_utf8(scope):
            return False
        timeout_text = _timeout_query(scope.get("query_string", b""))
        if timeout_text is _OTHER_QUERY:
            return False
        headers = RequestHeaders(scope)
        length = headers.content_length
        if length is None or length > self._cap or headers.chunked or from_worker(scope):
            return False
        caller = self._authenticator.cached(headers.authorization)
        if caller is None or caller.model_calls_only or caller.delegation is not None:
            return False
        if self._origin.refusal(scope) is not None:
            return False
        # From here on the lane answers: nothing above read the body or changed any state.
        received_us = time.time_ns() // 1000
        started = time.perf_counter()
        owner, name = parts[0].lower(), parts[1].lower()  # Algorithmia's names in any case
        spec = parts[2] if len(parts) == 3 else None
        request_id = headers.request_id or new_request_id()
        trail = AuditTrail(
            caller=caller, action="model.call", resource=f"{owner}/{name}", request_id=request_id,
            traceparent=headers.traceparent,
        )  # fmt: skip
        CURRENT_TRAIL.set(trail)
        try:
            status, start, body = await self._answer(
                receive, trail, headers.content_type, owner, name, spec, timeout_text
            )
        except Exception:
            logger.exception("unhandled error")
            trail.error_code = "internal_error"
            status, start, body = _internal_error()
        if self._metrics is not None:
            seconds = time.perf_counter() - started
            self._metrics.observe(
                "model.call", status, trail.resource, trail.version, trail.error_code, seconds,
                trail.alias,
            )  # fmt: skip
        if self._audit.enabled:
            trail.version = trail.version or spec  # as the audit middleware fills it in
            row = request_row(
                self._audit, scope, headers, trail, "POST", path, status, received_us, started,
                length, len(body),
            )  # fmt: skip
            try:
                await self._audit.record_wire(row)
            except AlgoraError:
                await send_unavailable(send)
                return True
        if status == CLIENT_GONE_STATUS:
            return True  # no one to answer
        await send(start)
        await send({"type": "http.response.body", "body": body})
        return True

    async def _answer(
        self,
        receive: Receive,
        trail: AuditTrail,
        content_type: str | None,
        owner: str,
        name: str,
        spec: str | None,
        timeout_text: str | None,
    ) -> tuple[int, Message, bytes]:
        """(status, response start, body) of the call, as the route in :mod:`.calls` renders
        it; the trail gets the version served and the error code."""
        assert trail.caller is not None and trail.request_id is not None
        request_id = trail.request_id
        try:
            self._calls.admit(trail.caller, owner, name)
            payload = await self._read(receive)
            call = Call(
                caller=trail.caller,
                owner=owner,
                name=name,
                spec=spec,
                content_type=input_kind(content_type, payload),
                payload=payload,
                timeout=parse_timeout(timeout_text),
                request_id=request_id,
                trail=trail,
                admitted=True,
            )
            served = await unless_hung_up(receive, self._calls.call(call))
        except (_Disconnected, ClientGone):
            trail.error_code = "client_disconnected"
            return CLIENT_GONE_STATUS, {}, b""
        except AlgoraError as error:
            trail.error_code = error.code
            response = error_response(error, request_id)
            start: Message = {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": _closing(response.raw_headers, error),
            }
            return response.status_code, start, bytes(response.body)
        body = success_body(served.result)
        start = {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                *_JSON_HEADERS,
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode("latin-1")),
                (b"x-algora-version", served.version.semver.encode("latin-1")),
            ],
        }
        return 200, start, body

    async def _read(self, receive: Receive) -> bytes:
        """The declared body (at most the lane's cap), each chunk within the read timeout."""
        chunks: list[bytes] = []
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._read_timeout) as deadline:
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _Disconnected
                    chunks.append(message.get("body", b""))
                    if not message.get("more_body", False):
                        break
                    deadline.reschedule(loop.time() + self._read_timeout)
        except TimeoutError:
            raise RequestTimeout(
                f"the request body stalled: no byte arrived for {self._read_timeout:g} seconds"
            ) from None
        return b"".join(chunks)


_OTHER_QUERY = "\x00other"


def _timeout_query(query: bytes) -> str | None:
    """The ``timeout`` option's text (None when absent); ``_OTHER_QUERY`` for any other query,
    which the general stack answers (``stdout``, ``output``, options Algorithmia ignores)."""
    if not query:
        return None
    if not query.startswith(b"timeout=") or b"&" in query or not query.isascii():
        return _OTHER_QUERY
    return unquote(query[8:].decode("ascii").replace("+", " "))


def _closing(headers: list[tuple[bytes, bytes]], error: AlgoraError) -> list[Any]:
    """A refused body that was not read to its end closes the connection, as the guard does."""
    if isinstance(error, RequestTimeout):
        return [*headers, (b"connection", b"close")]
    return headers


def _internal_error() -> tuple[int, Message, bytes]:
    """What the general stack answers for an unexpected error (``algora.app``)."""
    body = json.dumps(error_body(AlgoraError("internal error: the server logged the details")))
    encoded = body.encode()
    start: Message = {
        "type": "http.response.start",
        "status": 500,
        "headers": [*_JSON_HEADERS, (b"content-length", str(len(encoded)).encode())],
    }
    return 500, start, encoded
