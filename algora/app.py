"""``create_app``: the gateway, composed top to bottom in one place."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp

from algora import __version__
from algora.auth.principals import Caller
from algora.errors import AlgoraError, InvalidInput, NotFound, error_body, retry_after
from algora.gateway import health
from algora.gateway.auditing import AuditMiddleware, note_error
from algora.gateway.bodies import BodyGuardMiddleware
from algora.gateway.logformat import configure_logging
from algora.gateway.methods import AllowedMethodsMiddleware
from algora.gateway.openapi import document_errors
from algora.gateway.origin import OriginMiddleware
from algora.gateway.permissions import AUTHENTICATED, Needs, audited
from algora.platform import Platform
from algora.protocols import algorithmia, data, native, oip, prometheus
from algora.protocols.algorithmia import AlgorithmiaNamesMiddleware
from algora.protocols.algorithmia.lane import CallLane
from algora.settings import Settings
from algora.web import create_ui, front_door

__all__ = ["configure_logging", "create_app"]  # configure_logging: for `algora serve`

logger = logging.getLogger(__name__)


def _json_error(error: AlgoraError) -> JSONResponse:
    wait = retry_after(error)
    headers = {"Retry-After": str(wait)} if wait is not None else None
    return JSONResponse(error_body(error), status_code=int(error.status), headers=headers)


async def _algora_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AlgoraError)  # registered for AlgoraError only
    note_error(request, exc)
    return _json_error(exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"location": ".".join(str(p) for p in err.get("loc", ())), "message": err.get("msg", "")}
        for err in exc.errors()
    ]
    summary = "; ".join(f"{p['location']}: {p['message']}" for p in problems)
    error = InvalidInput(f"invalid request: {summary}", details={"problems": problems})
    note_error(request, error)
    return _json_error(error)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return _json_error(NotFound("no such route: see /api/v1/openapi.json"))
    body = {"error": {"code": f"http_{exc.status_code}", "message": str(exc.detail), "details": {}}}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=exc)
    return _json_error(AlgoraError("internal error: the server logged the details"))


def create_app(settings: Settings | None = None, platform: Platform | None = None) -> FastAPI:
    """Build the gateway. Pass an opened Platform (:meth:`Platform.open`) to share one with the
    caller (tests, ``serve``); without one, it opens its own and closes it at shutdown."""
    settings = settings or (platform.settings if platform else Settings())
    owned = platform is None
    platform = platform or Platform.open(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await platform.audit.start()
        platform.channels.start()  # workers' sockets are served on this loop
        platform.calls.attach(asyncio.get_running_loop())
        await platform.changes.start()
        background = {
            "algora-change-feed": platform.changes.run(),
            "algora-call-stats": platform.rollups.run(),
            "algora-gateway-lease": platform.leases.run(),
            "algora-usage-and-quotas": platform.quotas.run(platform.usage),
            "algora-model-reports": platform.reports.run(),
            "algora-payload-samples": platform.sampler.run(),
            "algora-drift-counts": platform.drift_counts.run(),
            "algora-alerts": platform.alert_engine.run(),
        }
        if platform.shared_buckets is not None:
            background["algora-rate-bucket-pruning"] = platform.shared_buckets.run_pruning()
        tasks = [asyncio.create_task(job, name=name) for name, job in background.items()]
        grpc_server = None
        if settings.grpc_port is not None:  # the Open Inference Protocol over gRPC, this loop
            grpc_server = oip.GrpcServer(platform, settings.grpc_port)
            await grpc_server.start()
        yield
        if grpc_server is not None:
            await grpc_server.stop()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await platform.audit.stop()  # commits what is queued
        await platform.rollups.flush()  # and the calls counted since the last write
        await platform.sampler.flush()
        await platform.usage.flush()
        await platform.reports.flush()
        await platform.drift_counts.flush()
        if owned:
            await platform.aclose()
        else:
            await platform.pools.stop_all()

    app = FastAPI(
        title="Algora",
        version=__version__,
        # No redirects: a POST redirected to another path is a trap for clients, and a
        # normalized redirect of a traversal attempt is noise. Routes say what they accept.
        redirect_slashes=False,
        openapi_url=None,  # served below, behind authentication like every other route
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry looks up the global providers on every request; Algora
        # has no use for it, and a call should not pay for it.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.platform = platform
    platform.channels.attach(app)  # served to models on their workers' sockets
    app.add_exception_handler(AlgoraError, _algora_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.include_router(health.router)
    app.include_router(prometheus.router)
    app.include_router(algorithmia.router)
    app.include_router(native.router)
    app.include_router(data.router)
    app.include_router(oip.router)  # /v2: the Open Inference Protocol, its own document
    app.include_router(front_door)  # /ui -> /ui/
    app.mount("/ui", create_ui(platform))  # the web UI: HTML pages, signed in by a session
    app.add_middleware(AllowedMethodsMiddleware, routes=app.router.routes)  # 405: every method
    app.add_middleware(  # no body byte read before the key is checked, none past the cap
        BodyGuardMiddleware, settings=settings, authenticator=platform.authenticator
    )
    app.add_middleware(OriginMiddleware, settings=settings)  # Host and Origin, inside audit
    # sees every route and refusal; counts each request for /metrics
    app.add_middleware(AuditMiddleware, audit=platform.audit, metrics=platform.counting)
    app.add_middleware(AlgorithmiaNamesMiddleware)  # demo/Hello is demo/hello, audited so

    @app.get("/api/v1/openapi.json", include_in_schema=False, openapi_extra=audited("api.describe"))
    async def openapi(_caller: Annotated[Caller, Depends(Needs(AUTHENTICATED))]) -> JSONResponse:
        return JSONResponse(app.openapi())

    build_stack = app.build_middleware_stack

    def stack_behind_the_call_lane() -> ASGIApp:
        # Outside even FastAPI's own error middleware: a warm call pays for none of it.
        return CallLane(
            build_stack(),
            settings=settings,
            authenticator=platform.authenticator,
            calls=platform.calls,
            audit=platform.audit,
            metrics=platform.counting,
        )

    app.build_middleware_stack = stack_behind_the_call_lane  # type: ignore[method-assign]

    generate = app.openapi

    def described() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(generate())
        return app.openapi_schema

    app.openapi = described  # type: ignore[method-assign]  # FastAPI's documented way

    return app
