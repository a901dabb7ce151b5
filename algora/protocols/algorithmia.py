"""``POST /v1/algo/{owner}/{name}[/{version}]``: Algorithmia's request and response envelopes.

Success: ``{"result": ..., "metadata": {"content_type": "json|text|binary|void",
"duration": seconds}}``. An exception raised by the model: HTTP 200 with
``{"error": {"message", "error_type", "stacktrace"}}`` (Algorithmia's clients raise on that
body). Platform errors: their own 4xx/5xx status with ``{"error": {"message", "code"}}``.
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
    UnsupportedMediaType,
    retry_after,
)
from algora.gateway.auditing import trail_of
from algora.gateway.calls import Call, new_request_id
from algora.gateway.deps import current_caller, platform_of, read_body
from algora.gateway.permissions import declare
from algora.workers.spec import CallResult

__all__ = ["router"]

router = APIRouter(tags=["calls"])

_JSON = "application/json"
_VALIDATE_JSON_UP_TO = 256 * 1024
# Serialized Python objects are refused even as text/*: a model must never be handed one.
_OBJECT_FORMATS = re.compile(r"pickle|joblib|yaml|marshal|dill")
_REFUSED_HINT = (
    "send JSON (application/json), text (text/plain) or bytes (application/octet-stream); "
    "serialized Python objects are never accepted"
)


def _input_kind(content_type: str | None, body: bytes) -> Literal["json", "text", "binary"]:
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


def _success_body(result: CallResult) -> bytes:
    kind = result.content_type
    if kind == "json":
        encoded = result.payload or b"null"
    elif kind == "text":
        encoded = json.dumps(result.payload.decode("utf-8", errors="replace")).encode()
    elif kind == "binary":
        encoded = json.dumps(base64.b64encode(result.payload).decode("ascii")).encode()
    else:
        kind, encoded = "void", b"null"
    metadata = json.dumps(
        {"content_type": kind, "duration": round(result.duration, 6)}, separators=(",", ":")
    )
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
    wait = retry_after(error)
    if wait is not None:
        headers["Retry-After"] = str(wait)
    return Response(
        json.dumps(body), status_code=int(error.status), media_type=_JSON, headers=headers
    )


def _timeout(value: str | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
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
    try:
        caller = await current_caller(request)
        # Admitted before the body is read: a caller past its own limit costs little.
        platform.calls.admit(caller, owner, name)
        body = await read_body(request, platform.settings.max_request_bytes)
        served = await platform.calls.call(
            Call(
                caller=caller,
                owner=owner,
                name=name,
                spec=spec,
                content_type=_input_kind(request.headers.get("content-type"), body),
                payload=body,
                timeout=_timeout(request.query_params.get("timeout")),
                request_id=request_id,
                trail=trail,
                admitted=True,
            )
        )
    except AlgoraError as error:
        trail.error_code = error.code
        return error_response(error, request_id)
    headers = {"X-Request-Id": request_id, "X-Algora-Version": served.version.semver}
    return Response(_success_body(served.result), media_type=_JSON, headers=headers)


@router.post(
    "/v1/algo/{owner}/{name}",
    summary="Call the latest version of a model",
    openapi_extra=declare("call"),
)
async def call_latest(request: Request, owner: str, name: str) -> Response:
    return await _call(request, owner, name, None)


@router.post(
    "/v1/algo/{owner}/{name}/{spec}",
    summary="Call the version a spec names",
    openapi_extra=declare("call"),
)
async def call_version(request: Request, owner: str, name: str, spec: str) -> Response:
    return await _call(request, owner, name, spec)


@router.post(
    "/v1/algo/{owner}/{name}/{spec}/", include_in_schema=False, openapi_extra=declare("call")
)
async def call_version_slash(request: Request, owner: str, name: str, spec: str) -> Response:
    return await _call(request, owner, name, spec)
