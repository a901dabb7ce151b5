"""``/v2``: the Open Inference Protocol (V2) over REST, for Triton's and KServe's clients.

A model is ``/v2/models/{owner}/{name}`` (or ``owner%2Fname``), or ``/v2/models/{name}`` for the
caller's own; ``/versions/{version}`` names a version (any version spec), and without one the
``production`` alias answers, else the latest ready version. ``/ready`` and ``/infer`` end the
path. An infer is one more call on the one call path (:mod:`algora.gateway.calls`): the same
keys, permissions, rate limits, audit rows (``model.call``) and body cap as every call. Errors
are the protocol's ``{"error": "..."}``, with their own status (503 for a version not ready).

The routes are left out of the OpenAPI document of ``/api/v1``: ``/v2`` is its own protocol.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from algora import __version__
from algora.auth.policy import require_scope
from algora.auth.principals import Caller
from algora.errors import (
    AlgoraError,
    AliasNotFound,
    NotFound,
    VersionNotReady,
    retry_after,
)
from algora.gateway import health
from algora.gateway.auditing import trail_of
from algora.gateway.calls import Call, new_request_id
from algora.gateway.deps import current_caller, platform_of, read_body
from algora.gateway.hangups import CLIENT_GONE_STATUS, ClientGone, unless_hung_up
from algora.gateway.permissions import AUTHENTICATED, PUBLIC, declare
from algora.protocols.oip.wire import (
    HEADER_LENGTH,
    Declared,
    decompressed,
    parse_infer,
    render_infer,
)

__all__ = ["router"]

router = APIRouter(tags=["open inference protocol"], include_in_schema=False)

_DEFAULT_ALIAS = "production"
_NO_ALIAS_SECONDS = 2.0
_without_alias: dict[tuple[str, str], float] = {}
"""Models found without the default alias, until when: a call without a version then resolves
``latest`` from the call path's cache instead of asking the database for the alias each time
(like the call path's own cache, a new alias is seen within seconds)."""


class _Target:
    """What a ``/v2/models/...`` path names: the model, the version spec, and the action."""

    def __init__(self, path: str, caller: Caller) -> None:
        parts = path.split("/")
        self.action = parts.pop() if len(parts) > 1 and parts[-1] in ("ready", "infer") else None
        self.spec: str | None = None
        if len(parts) > 2 and parts[-2] == "versions":
            self.spec = parts.pop()
            parts.pop()
        if len(parts) == 1 and parts[0]:
            self.owner, self.name = caller.name, parts[0]
            self.shown = parts[0]
        elif len(parts) == 2 and all(parts):
            self.owner, self.name = parts
            self.shown = "/".join(parts)
        else:
            raise NotFound(
                f"no model at '/v2/models/{path}': use /v2/models/OWNER/NAME (or OWNER%2FNAME, "
                "or NAME for your own), then /versions/VERSION, /ready or /infer"
            )


def _error(error: AlgoraError, request_id: str | None = None) -> JSONResponse:
    status = 503 if isinstance(error, VersionNotReady) else int(error.status)
    headers = {"X-Request-Id": request_id} if request_id else {}
    wait = retry_after(error)
    if wait is not None:
        headers["Retry-After"] = str(wait)
    return JSONResponse({"error": error.message}, status_code=status, headers=headers)


async def _resolve(
    request: Request, caller: Caller, target: _Target
) -> tuple[Any, Any, str | None]:
    """(model, version, spec): without a version, the ``production`` alias, else the latest
    ready version; the spec is what the call path resolves again (from its cache)."""
    calls = platform_of(request).calls
    trail_of(request).resource = f"{target.owner}/{target.name}"
    require_scope(caller, "call", f"{target.owner}/{target.name}")
    if target.spec is not None:
        model, version = await calls.resolve(caller, target.owner, target.name, target.spec)
        return model, version, target.spec
    key = (target.owner, target.name)
    if _without_alias.get(key, 0.0) < time.monotonic():
        try:
            model, version = await calls.resolve(caller, *key, _DEFAULT_ALIAS)
        except AliasNotFound:
            if len(_without_alias) > 10_000:
                _without_alias.clear()
            _without_alias[key] = time.monotonic() + _NO_ALIAS_SECONDS
        else:
            _without_alias.pop(key, None)
            return model, version, _DEFAULT_ALIAS
    model, version = await calls.resolve(caller, *key, None)
    return model, version, None


@router.get("/v2/health/live", openapi_extra=declare(PUBLIC, audit="health.live"))
async def live() -> JSONResponse:
    return JSONResponse({"live": True})


@router.get("/v2/health/ready", openapi_extra=declare(PUBLIC, audit="health.ready"))
async def ready(request: Request) -> JSONResponse:
    answer = await health.readyz(request)  # the same truth as /readyz
    ok = answer.status_code == 200
    return JSONResponse({"ready": ok}, status_code=200 if ok else 503)


@router.get("/v2", openapi_extra=declare(AUTHENTICATED, audit="server.describe"))
async def server_metadata(request: Request) -> JSONResponse:
    try:
        await current_caller(request)
    except AlgoraError as error:
        trail_of(request).error_code = error.code
        return _error(error)
    return JSONResponse(
        {"name": "algora", "version": __version__, "extensions": ["binary_tensor_data"]}
    )


@router.get("/v2/models/{path:path}", openapi_extra=declare("call", audit="model.describe"))
async def model_metadata(request: Request, path: str) -> JSONResponse:
    """A model's (or a version's) metadata, or, ending in ``/ready``, whether it is ready."""
    try:
        caller = await current_caller(request)
        target = _Target(path, caller)
        if target.action == "infer":
            return JSONResponse({"error": "POST the inference request"}, status_code=405)
        _model, version, _spec = await _resolve(request, caller, target)
    except AlgoraError as error:
        trail_of(request).error_code = error.code
        return _error(error)
    if target.action == "ready":
        return JSONResponse({"name": target.shown, "ready": True})
    declared = Declared.of(version.manifest, version.input_schema, version.output_schema)
    return JSONResponse(
        {
            "name": target.shown,
            "versions": [version.semver],
            "platform": "algora",
            "inputs": declared.inputs,
            "outputs": declared.outputs,
        }
    )


@router.post("/v2/models/{path:path}", openapi_extra=declare("call", audit="model.call"))
async def infer(request: Request, path: str) -> Response:
    request_id = request.headers.get("x-request-id") or new_request_id()
    platform = platform_of(request)
    trail = trail_of(request)
    trail.request_id = request_id
    trail.version = None  # only the version actually served
    try:
        caller = await current_caller(request)
        target = _Target(path, caller)
        if target.action != "infer":
            raise NotFound(f"nothing to POST at '/v2/models/{path}': POST to .../infer")
        # Admitted before the body is read: a caller past its own limit costs little.
        platform.calls.admit(caller, target.owner, target.name)
        limit = platform.settings.max_request_bytes
        body = decompressed(
            await read_body(request, limit), request.headers.get("content-encoding"), limit
        )
        _model, version, spec = await _resolve(request, caller, target)
        parsed = parse_infer(body, request.headers.get(HEADER_LENGTH), limit)
        declared = Declared.of(version.manifest, version.input_schema, version.output_schema)
        declared.check(parsed)
        fields: dict[str, Any] = {"tensors": parsed.tensors, "parameters": parsed.parameters}
        if declared.input_form is not None:
            fields["input_form"] = declared.input_form
        if declared.output_names:
            fields["output_names"] = declared.output_names
        call = Call(
            caller=caller,
            owner=target.owner,
            name=target.name,
            spec=spec,
            content_type="tensors",
            payload=parsed.payload,
            request_id=request_id,
            trail=trail,
            admitted=True,
            fields=fields,
        )
        served = await unless_hung_up(request.receive, platform.calls.call(call))
        result = served.result
        if result.content_type != "tensors" or result.tensors is None:
            raise AlgoraError(f"the model answered {result.content_type}, not tensors")
        content, headers = render_infer(
            parsed, result.tensors, result.payload, target.shown, served.version.semver
        )
    except ClientGone:
        trail.error_code = "client_disconnected"
        return Response(b"", status_code=CLIENT_GONE_STATUS)
    except AlgoraError as error:
        trail.error_code = error.code
        return _error(error, request_id)
    headers["X-Request-Id"] = request_id
    return Response(content, headers=headers)
