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

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from algora import __version__
from algora.auth.principals import Caller
from algora.errors import AlgoraError, NotFound, retry_after
from algora.gateway import health
from algora.gateway.auditing import trail_of
from algora.gateway.calls import new_request_id
from algora.gateway.deps import current_caller, platform_of, read_body
from algora.gateway.hangups import CLIENT_GONE_STATUS, ClientGone, unless_hung_up
from algora.gateway.permissions import AUTHENTICATED, PUBLIC, declare
from algora.protocols.oip import service
from algora.protocols.oip.service import Resolved, Target
from algora.protocols.oip.wire import HEADER_LENGTH, decompressed, parse_infer, render_infer

__all__ = ["router"]

router = APIRouter(tags=["open inference protocol"], include_in_schema=False)


def _target(path: str, caller: Caller) -> tuple[Target, str | None]:
    """What a ``/v2/models/...`` path names: the model and version, and the action."""
    parts = path.split("/")
    action = parts.pop() if len(parts) > 1 and parts[-1] in ("ready", "infer") else None
    spec: str | None = None
    if len(parts) > 2 and parts[-2] == "versions":
        spec = parts.pop()
        parts.pop()
    if not (len(parts) in (1, 2) and all(parts)):
        raise NotFound(
            f"no model at '/v2/models/{path}': use /v2/models/OWNER/NAME (or OWNER%2FNAME, "
            "or NAME for your own), then /versions/VERSION, /ready or /infer"
        )
    return Target.named("/".join(parts), spec, caller), action


def _error(error: AlgoraError, request_id: str | None = None) -> JSONResponse:
    headers = {"X-Request-Id": request_id} if request_id else {}
    wait = retry_after(error)
    if wait is not None:
        headers["Retry-After"] = str(wait)
    return JSONResponse(
        {"error": error.message}, status_code=service.status(error), headers=headers
    )


async def _resolve(request: Request, caller: Caller, target: Target) -> Resolved:
    trail_of(request).resource = target.resource
    return await service.resolve(platform_of(request).calls, caller, target)


@router.get("/v2/health/live", openapi_extra=declare(PUBLIC, audit="health.live"))
async def live() -> JSONResponse:
    return JSONResponse({"live": True})


@router.get("/v2/health/ready", openapi_extra=declare(PUBLIC, audit="health.ready"))
async def ready(request: Request) -> JSONResponse:
    ok = not await health.readiness_problems(platform_of(request))  # the truth of /readyz
    return JSONResponse({"ready": ok}, status_code=200 if ok else 503)


@router.get("/v2", openapi_extra=declare(AUTHENTICATED, audit="server.describe"))
async def server_metadata(request: Request) -> JSONResponse:
    try:
        await current_caller(request)
    except AlgoraError as error:
        trail_of(request).error_code = error.code
        return _error(error)
    return JSONResponse(
        {"name": "algora", "version": __version__, "extensions": service.EXTENSIONS}
    )


@router.get("/v2/models/{path:path}", openapi_extra=declare("call", audit="model.describe"))
async def model_metadata(request: Request, path: str) -> JSONResponse:
    """A model's (or a version's) metadata, or, ending in ``/ready``, whether it is ready."""
    try:
        caller = await current_caller(request)
        target, action = _target(path, caller)
        if action == "infer":
            return JSONResponse({"error": "POST the inference request"}, status_code=405)
        resolved = await _resolve(request, caller, target)
    except AlgoraError as error:
        trail_of(request).error_code = error.code
        return _error(error)
    if action == "ready":
        return JSONResponse({"name": target.shown, "ready": True})
    return JSONResponse(service.describe(target, resolved))


@router.post("/v2/models/{path:path}", openapi_extra=declare("call", audit="model.call"))
async def infer(request: Request, path: str) -> Response:
    request_id = request.headers.get("x-request-id") or new_request_id()
    platform = platform_of(request)
    trail = trail_of(request)
    trail.request_id = request_id
    trail.version = None  # only the version actually served
    try:
        caller = await current_caller(request)
        target, action = _target(path, caller)
        if action != "infer":
            raise NotFound(f"nothing to POST at '/v2/models/{path}': POST to .../infer")
        # Admitted before the body is read: a caller past its own limit costs little.
        platform.calls.admit(caller, target.owner, target.name)
        limit = platform.settings.max_request_bytes
        body = decompressed(
            await read_body(request, limit), request.headers.get("content-encoding"), limit
        )
        resolved = await _resolve(request, caller, target)
        parsed = parse_infer(body, request.headers.get(HEADER_LENGTH), limit)
        call = service.infer_call(
            caller, target, resolved, parsed, request_id=request_id, trail=trail
        )
        served = await unless_hung_up(request.receive, platform.calls.call(call))
        described, payload = service.answer_of(served.result)
        content, headers = render_infer(
            parsed, described, payload, target.shown, served.version.semver
        )
    except ClientGone:
        trail.error_code = "client_disconnected"
        return Response(b"", status_code=CLIENT_GONE_STATUS)
    except AlgoraError as error:
        trail.error_code = error.code
        return _error(error, request_id)
    headers["X-Request-Id"] = request_id
    return Response(content, headers=headers)
