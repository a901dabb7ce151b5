"""``POST /v1/algo/{owner}/{name}[/{version}]``: Algorithmia's request and response envelopes.

Success: ``{"result": ..., "metadata": {"content_type": "json|text|binary|void",
"duration": seconds}}``. An exception raised by the model: HTTP 200 with
``{"error": {"message", "error_type", "stacktrace"}}`` (Algorithmia's clients raise on that
body); the stack trace shows the model's source, so it is empty unless the caller may manage the
model (:func:`algora.gateway.calls.may_manage`). Platform errors: their own 4xx/5xx status
with ``{"error": {"message", "code"}}``.

Query options (others are ignored, as Algorithmia does):

- ``timeout``: seconds, capped by the server's ``max_call_timeout``;
- ``stdout=true`` (``True``, ``1``): the call's captured stdout in ``metadata.stdout``, only for
  a caller who may manage the model (see :func:`algora.gateway.calls.may_manage`); otherwise
  the key is left out;
- ``output=raw``: the bare result as the body (text as text/plain, JSON as JSON, binary as
  application/octet-stream, nothing for void); errors keep their envelope;
- ``output=void``: resolved, authorized and admitted at once, then answered with
  ``{"async": "void", "request_id": ...}`` while the call runs in the background; its outcome
  is recorded in the audit log (``model.call.void``).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response

from algora.errors import (
    AlgoraError,
    BadRequest,
    InvalidInput,
    ModelError,
    RateLimited,
    UnsupportedMediaType,
    retry_after,
)
from algora.gateway.auditing import trail_of
from algora.gateway.calls import Call, Served, new_request_id
from algora.gateway.deps import current_caller, platform_of, read_body
from algora.gateway.hangups import CLIENT_GONE_STATUS, ClientGone, unless_hung_up
from algora.gateway.inputs import finite_float
from algora.gateway.permissions import declare
from algora.workers.spec import CallResult

__all__ = ["error_response", "input_kind", "parse_timeout", "router", "success_body"]

router = APIRouter(tags=["calls"])

_JSON = "application/json"
_VALIDATE_JSON_UP_TO = 256 * 1024
# Serialized Python objects are refused even as text/*: a model must never be handed one.
_OBJECT_FORMATS = re.compile(r"pickle|joblib|yaml|marshal|dill")
_REFUSED_HINT = (
    "send JSON (application/json), text (text/plain) or bytes (application/octet-stream); "
    "serialized Python objects are never accepted"
)


def input_kind(content_type: str | None, body: bytes) -> Literal["json", "text", "binary"]:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if _OBJECT_FORMATS.search(media):
        raise UnsupportedMediaType(f"content type '{media}' is not accepted: {_REFUSED_HINT}")
    if media in ("", _JSON) or media.endswith("+json"):
        if not body.strip():
            raise InvalidInput("the request body is empty: send a JSON value, such as null")
        # Large bodies are validated by the worker, which parses them anyway: parsing
        # megabytes here would stall every other call on the gateway's event loop.
        if len(body) <= _VALIDATE_JSON_UP_TO:
            try:
                json.loads(body)
            except (UnicodeDecodeError, ValueError):
                raise InvalidInput("the request body is not valid JSON") from None
            except RecursionError:
                raise InvalidInput("the request body's JSON is nested too deeply") from None
        return "json"
    if media.startswith("text/"):
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("a text/* request body must be UTF-8") from None
        return "text"
    if media == "application/octet-stream":
        return "binary"
    raise UnsupportedMediaType(f"content type '{media}' is not accepted: {_REFUSED_HINT}")


def success_body(result: CallResult, stdout: str | None = None) -> bytes:
    kind = result.content_type
    if kind == "json":
        encoded = result.payload or b"null"
    elif kind == "text":
        encoded = json.dumps(result.payload.decode("utf-8", errors="replace")).encode()
    elif kind == "binary":
        encoded = json.dumps(base64.b64encode(result.payload).decode("ascii")).encode()
    else:
        kind, encoded = "void", b"null"
    fields: dict[str, Any] = {"content_type": kind, "duration": round(result.duration, 6)}
    if stdout is not None:
        fields["stdout"] = stdout
    metadata = json.dumps(fields, separators=(",", ":"))
    return b'{"result":' + encoded + b',"metadata":' + metadata.encode() + b"}"


def error_response(error: AlgoraError, request_id: str) -> Response:
    headers = {"X-Request-Id": request_id}
    if isinstance(error, ModelError) and error.code == "model_error":
        body: dict[str, Any] = {
            "error": {
                "message": error.message,
                "error_type": error.details.get("error_type", "AlgorithmError"),
                "stacktrace": error.details.get("stacktrace", ""),
            }
        }
        return Response(json.dumps(body), status_code=200, media_type=_JSON, headers=headers)
    body = {"error": {"message": error.message, "code": error.code}}
    if isinstance(error, RateLimited):  # which limit or quota refused, and when to retry
        body["error"]["details"] = error.details
    wait = retry_after(error)
    if wait is not None:
        headers["Retry-After"] = str(wait)
    return Response(
        json.dumps(body), status_code=int(error.status), media_type=_JSON, headers=headers
    )


_RAW_MEDIA = {
    "json": _JSON,
    "text": "text/plain; charset=utf-8",
    "binary": "application/octet-stream",
}


def _raw_response(served: Served, headers: dict[str, str]) -> Response:
    """``output=raw``: the bare result, in its own media type."""
    result = served.result
    media = _RAW_MEDIA.get(result.content_type)
    if media is None:  # void: nothing to send
        return Response(b"", headers=headers)
    payload = result.payload or (b"null" if result.content_type == "json" else b"")
    return Response(payload, media_type=media, headers=headers)


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1")


def _output(value: str | None) -> Literal["default", "raw", "void"]:
    """``output=raw`` or ``output=void``; anything else is the default envelope."""
    text = (value or "").strip().lower()
    return "raw" if text == "raw" else "void" if text == "void" else "default"


def parse_timeout(value: str | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        seconds = finite_float(value, "timeout")
    except ValueError:
        raise BadRequest(f"timeout must be a number of seconds, not '{value}'") from None
    if seconds <= 0:
        raise BadRequest("timeout must be greater than zero")
    return seconds


async def _call(request: Request, owner: str, name: str, spec: str | None) -> Response:
    request_id = request.headers.get("x-request-id") or new_request_id()
    platform = platform_of(request)
    trail = trail_of(request)  # the audit row: the middleware commits it before the answer
    trail.request_id = request_id
    trail.version = None  # only the version actually served, never the spec asked for
    query = request.query_params
    output = _output(query.get("output"))
    try:
        caller = await current_caller(request)
        # Admitted before the body is read: a caller past its own limit costs little.
        platform.calls.admit(caller, owner, name)
        body = await read_body(request, platform.settings.max_request_bytes)
        call = Call(
            caller=caller,
            owner=owner,
            name=name,
            spec=spec,
            content_type=input_kind(request.headers.get("content-type"), body),
            payload=body,
            timeout=parse_timeout(query.get("timeout")),
            request_id=request_id,
            trail=trail,
            admitted=True,
            stdout=_flag(query.get("stdout")),
        )
        if output == "void":
            _model, version = await platform.calls.call_void(call)
            headers = {"X-Request-Id": request_id, "X-Algora-Version": version.semver}
            accepted = json.dumps({"async": "void", "request_id": request_id})
            return Response(accepted, media_type=_JSON, headers=headers)
        served = await unless_hung_up(request.receive, platform.calls.call(call))
    except ClientGone:
        trail.error_code = "client_disconnected"
        return Response(b"", status_code=CLIENT_GONE_STATUS)  # nobody reads it; the row does
    except AlgoraError as error:
        trail.error_code = error.code
        return error_response(error, request_id)
    headers = {"X-Request-Id": request_id, "X-Algora-Version": served.version.semver}
    if output == "raw":
        return _raw_response(served, headers)
    return Response(success_body(served.result, served.stdout), media_type=_JSON, headers=headers)


@router.post(
    "/v1/algo/{owner}/{name}",
    summary="Call the latest version of a model",
    openapi_extra=declare("call", audit="model.call"),
)
async def call_latest(request: Request, owner: str, name: str) -> Response:
    return await _call(request, owner, name, None)


@router.post(
    "/v1/algo/{owner}/{name}/{spec}",
    summary="Call the version a spec names",
    openapi_extra=declare("call", audit="model.call"),
)
async def call_version(request: Request, owner: str, name: str, spec: str) -> Response:
    return await _call(request, owner, name, spec)


@router.post(
    "/v1/algo/{owner}/{name}/{spec}/",
    include_in_schema=False,
    openapi_extra=declare("call", audit="model.call"),
)
async def call_version_slash(request: Request, owner: str, name: str, spec: str) -> Response:
    return await _call(request, owner, name, spec)
