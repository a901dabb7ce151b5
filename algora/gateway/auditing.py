"""Audit middleware: one committed audit row before the answer, for every call and change.

Plain ASGI. It records every model call, every request that changes something (any method but
GET, HEAD and OPTIONS), every denied request (401, 403) on any route, and the few reads a route
asks for (``whoami``, audit reads). Each route declares its action where it declares its
permission (:func:`algora.gateway.permissions.audited`); the middleware reads it from the
route the request matched, with the model (``owner/name``), key and version the path names.
Routes add what only they know (the caller, the version served, the error code) to the
request's :class:`AuditTrail`; the middleware adds when, from where, the status and the byte
counts, and holds the response until the row is committed. Never a payload, never a header's
secret.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from algora.audit.log import AuditEvent, AuditLog, Decision, wire_row
from algora.auth.delegation import accountable_key_id
from algora.auth.keys import parse_authorization_scheme
from algora.auth.principals import Caller
from algora.errors import AlgoraError, Unavailable, error_body
from algora.gateway.metrics import Metrics

__all__ = [
    "AUDIT_KEY",
    "AuditMiddleware",
    "AuditTrail",
    "RequestHeaders",
    "call_event",
    "declared_action",
    "request_row",
    "send_unavailable",
    "trail_of",
]

logger = logging.getLogger(__name__)

_SCOPE_KEY = "algora.audit"
AUDIT_KEY = "x-algora-audit"
"""Where a route's ``openapi_extra`` names its audit action (see ``permissions.audited``)."""
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_CHANGE_PREFIXES = ("/api/v1/", "/v1/data/", "/v1/connector/")


@dataclass
class AuditTrail:
    """What the route learned about a request, for its audit row."""

    caller: Caller | None = None
    action: str | None = None
    resource: str | None = None
    version: str | None = None
    alias: str | None = None
    """The alias a model call named, once it resolved (for metrics; not an audit column)."""
    request_id: str | None = None
    parent_request_id: str | None = None
    """The call being served by the model from inside which the request was made."""
    error_code: str | None = None
    traceparent: str | None = None
    """The caller's W3C trace context, when it sent one (the parent of the call's span)."""
    trace_id: str | None = None
    """The trace of the call's span, when tracing is on (for the log lines)."""


CURRENT_TRAIL: ContextVar[AuditTrail | None] = ContextVar("algora_trail", default=None)
"""The trail of the request being served (for the log lines written while it is)."""


def trail_of(connection: HTTPConnection) -> AuditTrail:
    """The request's trail (a detached one when the middleware is not mounted)."""
    trail = connection.scope.get(_SCOPE_KEY)
    return trail if isinstance(trail, AuditTrail) else AuditTrail()


def note_error(connection: HTTPConnection, error: AlgoraError) -> None:
    trail_of(connection).error_code = error.code


@dataclass(frozen=True)
class _Declared:
    """The audit action the matched route declares, and what its path names."""

    action: str
    always: bool
    resource: str | None
    version: str | None


def declared_action(route: object) -> tuple[str, bool] | None:
    """(action, recorded on reads too) that ``route`` declares; None when it declares none."""
    extra = getattr(route, "openapi_extra", None)
    declaration = extra.get(AUDIT_KEY) if isinstance(extra, dict) else None
    if not isinstance(declaration, dict) or not isinstance(declaration.get("action"), str):
        return None
    return declaration["action"], declaration.get("record") == "always"


def _declared(scope: Scope) -> _Declared | None:
    """The declaration of the route the request matched; None for a request that matched no
    route or was refused before routing (a bad Host, say), recorded as ``http.<method>``."""
    route = scope.get("route")
    params: dict[str, Any] = scope.get("path_params") or {}
    methods = getattr(route, "methods", None)
    if route is None or (methods is not None and scope["method"] not in methods):
        return None  # no route, or another method's (answered 405)
    found = declared_action(route)
    if found is None:
        return None
    owner, name, key = params.get("owner"), params.get("name"), params.get("key_id")
    resource = f"{owner}/{name}" if owner and name else f"key/{key}" if key else None
    version = params.get("version") or params.get("spec")
    return _Declared(found[0], found[1], resource, version if isinstance(version, str) else None)


class RequestHeaders:
    """The few request headers an audit row (and the call lane) needs, found in one pass
    (this runs per call)."""

    __slots__ = (
        "authorization", "chunked", "content_length", "content_type", "forwarded_for",
        "request_id", "traceparent",
    )  # fmt: skip

    def __init__(self, scope: Scope) -> None:
        self.authorization: str | None = None
        self.forwarded_for: str | None = None
        self.request_id: str | None = None
        self.traceparent: str | None = None
        """W3C trace context of the caller's span (the parent of the call's span)."""
        self.content_length: int | None = None
        self.content_type: str | None = None
        """The first ``Content-Type``, as Starlette's ``headers.get`` reads it."""
        self.chunked = False
        for name, value in scope.get("headers", ()):
            if name == b"content-type":
                if self.content_type is None:
                    self.content_type = value.decode("latin-1")
            elif name == b"transfer-encoding":
                self.chunked = True
            elif name == b"authorization":
                self.authorization = value.decode("latin-1")
            elif name == b"content-length":
                # At most 18 digits: the row's bytes_in must fit a signed 64-bit column.
                digits = value.isdigit() and len(value) <= 18
                self.content_length = int(value) if digits else None
            elif name == b"x-forwarded-for":
                self.forwarded_for = value.decode("latin-1")
            elif name == b"x-request-id":
                self.request_id = value.decode("latin-1")
            elif name == b"traceparent":
                self.traceparent = value.decode("latin-1")[:64]


def _clip(value: str | None, limit: int) -> str | None:
    return value[:limit] if value else None


class AuditMiddleware:
    def __init__(self, app: ASGIApp, audit: AuditLog, metrics: Metrics | None = None) -> None:
        self.app = app
        self.audit = audit
        self.metrics = metrics
        """Counts every request as it is answered (``GET /metrics``), audited or not."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (self.audit.enabled or self.metrics is not None):
            await self.app(scope, receive, send)
            return
        received_us = time.time_ns() // 1000
        started = time.perf_counter()
        method: str = scope["method"]
        path: str = scope["path"]
        trail = AuditTrail()
        scope[_SCOPE_KEY] = trail
        CURRENT_TRAIL.set(trail)  # this request's task: the context ends with it
        headers = RequestHeaders(scope)
        trail.traceparent = headers.traceparent
        counts = {"in": headers.content_length or 0, "out": 0}
        start: Message | None = None
        recorded = False

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                counts["in"] += len(message.get("body", b""))
            return message

        # With a Content-Length the server passes on exactly that many bytes: no need to count.
        app_receive = receive if headers.content_length is not None else counting_receive

        async def commit(status: int, bytes_out: int | None) -> bool:
            """Record the row if this request wants one; False when it could not be written."""
            nonlocal recorded
            recorded = True
            declared = _declared(scope)
            if declared is not None:
                trail.action = trail.action or declared.action
                trail.resource = trail.resource or declared.resource
                trail.version = trail.version or declared.version
            if self.metrics is not None:
                seconds = time.perf_counter() - started
                self.metrics.observe(
                    trail.action, status, trail.resource, trail.version, trail.error_code,
                    seconds, trail.alias,
                )  # fmt: skip
            if declared is not None:
                wanted = declared.always or method not in _SAFE
            else:  # no route: recorded when it tried to change something under the APIs
                wanted = method not in _SAFE and path.startswith(_CHANGE_PREFIXES)
            if not self.audit.enabled or not (wanted or status in (401, 403)):
                return True
            wire = request_row(
                self.audit, scope, headers, trail, method, path, status, received_us, started,
                counts["in"], bytes_out,
            )  # fmt: skip
            try:
                await self.audit.record_wire(wire)
            except Unavailable:
                return False
            return True

        async def holding_send(message: Message) -> None:
            nonlocal start
            if recorded:
                if message["type"] == "http.response.body":
                    counts["out"] += len(message.get("body", b""))
                await send(message)
                return
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            body = message.get("body", b"")
            counts["out"] += len(body)
            streaming = bool(message.get("more_body", False))
            # A streamed response is recorded before its first byte: its size is not known yet.
            if await commit(int(start["status"]), None if streaming else counts["out"]):
                await send(start)
                await send(message)
            else:
                await send_unavailable(send)

        try:
            await self.app(scope, app_receive, holding_send)
        except Exception:
            if not recorded:
                trail.error_code = trail.error_code or "internal_error"
                await commit(500, None)
            raise


def request_row(
    audit: AuditLog,
    scope: Scope,
    headers: RequestHeaders,
    trail: AuditTrail,
    method: str,
    path: str,
    status: int,
    received_us: int,
    started: float,
    bytes_in: int,
    bytes_out: int | None,
) -> list[Any]:
    """The audit row of one answered request, in wire form (the middleware's and the call
    lane's: one shape for the same request however it was served)."""
    client = scope.get("client")
    peer, forwarded = audit.origin(str(client[0]) if client else None, headers.forwarded_for)
    auth_method, _secret = parse_authorization_scheme(headers.authorization)
    caller = trail.caller
    decision: Decision = "deny" if status in (401, 403, 429) else "allow"
    if trail.action == "model.call" and status == 404:
        decision = "deny"  # unknown and hidden (another user's private) models look alike
    request_id = trail.request_id or headers.request_id or _new_request_id()
    return wire_row(
        action=trail.action or f"http.{method.lower()}",
        received_us=received_us,
        completed_us=time.time_ns() // 1000,
        status=status,
        decision=decision,
        auth_method=auth_method,
        principal=caller.name if caller else None,
        principal_id=caller.principal_id if caller else None,
        key_id=accountable_key_id(caller) if caller else None,
        peer=_clip(peer, 64),
        forwarded_for=forwarded,
        resource=_clip(trail.resource if trail.action else path, 255),
        version=_clip(trail.version, 64),
        request_id=_clip(request_id, 128),
        parent_request_id=_clip(trail.parent_request_id, 128),
        error_code=_clip(trail.error_code, 64),
        latency_ms=(time.perf_counter() - started) * 1000,
        bytes_in=bytes_in,
        bytes_out=bytes_out,
    )


def call_event(
    caller: Caller,
    action: str,
    resource: str,
    version: str | None,
    request_id: str | None,
    received_at: datetime,
    started: float,
    error: AlgoraError | None,
) -> AuditEvent:
    """The audit row of a call the gateway finishes on its own, not as a request's answer (a
    background call, a pipeline's step): the call made by ``caller`` at ``received_at``
    (``started``: its ``time.perf_counter()``), ending now with ``error`` or without."""
    status = int(error.status) if error is not None else 200
    return AuditEvent(
        action=action,
        received_at=received_at,
        completed_at=datetime.now(UTC),
        status=status,
        decision="deny" if status in (401, 403, 429) else "allow",
        principal=caller.name,
        principal_id=caller.principal_id,
        key_id=accountable_key_id(caller),
        resource=resource,
        version=version,
        request_id=request_id,
        parent_request_id=caller.delegation.request_id if caller.delegation else None,
        error_code=error.code if error is not None else None,
        latency_ms=(time.perf_counter() - started) * 1000,
    )


def _new_request_id() -> str:
    return "req-" + os.urandom(16).hex()


async def send_unavailable(send: Send) -> None:
    """503: the audit row could not be written, so the answer is not given."""
    error = Unavailable("the audit log cannot be written, so the request was not answered")
    body = json.dumps(error_body(error)).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"5"),
    ]
    start: dict[str, Any] = {"type": "http.response.start", "status": 503, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})
