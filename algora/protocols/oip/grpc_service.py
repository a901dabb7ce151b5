"""``inference.GRPCInferenceService``: the Open Inference Protocol (V2) over gRPC, for Triton's
and KServe's gRPC clients, on its own port (``ALGORA_GRPC_PORT``, ``algora serve --grpc-port``).

It runs on the gateway's own event loop (``grpc.aio``), beside the HTTP server, and is the REST
adapter's twin: the same model names, versions, checks and errors (:mod:`.service`), the same
keys (metadata ``authorization: Simple KEY`` or ``Bearer KEY``), and each ModelInfer is one
call on the one call path, with its rate limits, its audit row (``model.call``; the peer is
the gRPC peer) and its metrics. Tensors travel as ``raw_input_contents`` and
``raw_output_contents`` (typed ``contents`` are read too). An error is a gRPC status:
INVALID_ARGUMENT for bad input, NOT_FOUND for an unknown model or version, UNAVAILABLE for a
version not ready or an overloaded server, UNAUTHENTICATED, PERMISSION_DENIED,
RESOURCE_EXHAUSTED for a rate limit, DEADLINE_EXCEEDED for a call past its time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import grpc
from grpc import aio

from algora import __version__
from algora.auth.principals import Caller
from algora.errors import (
    AlgoraError,
    PermissionDenied,
    Unavailable,
    VersionNotReady,
    retry_after,
)
from algora.gateway.auditing import CURRENT_TRAIL, AuditTrail, RequestHeaders, request_row
from algora.gateway.calls import new_request_id
from algora.gateway.hangups import CLIENT_GONE_STATUS
from algora.gateway.health import readiness_problems
from algora.platform import Platform
from algora.protocols.oip import grpc_predict_v2_pb2 as pb
from algora.protocols.oip import service
from algora.protocols.oip.grpc_messages import (
    RPCS,
    SERVICE,
    infer_of,
    tensor_metadata,
)
from algora.protocols.oip.service import Target
from algora.protocols.oip.wire import selected

__all__ = ["GrpcServer"]

logger = logging.getLogger(__name__)

_SERVICE = "/inference.GRPCInferenceService/"
_STREAM_IN_FLIGHT = 64
"""Requests of one stream served at once; past it the stream is not read until one finishes."""
_ENVELOPE_BYTES = 1024 * 1024
"""Room in a message for what is not tensor data (names, shapes, parameters)."""
_STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.FAILED_PRECONDITION,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def grpc_code(error: AlgoraError) -> grpc.StatusCode:
    """The gRPC status of an error (from the protocol's HTTP status)."""
    return _STATUS_CODES.get(service.status(error), grpc.StatusCode.INTERNAL)


def peer_address(peer: str | None) -> tuple[str, int] | None:
    """The client's (host, port) from gRPC's peer: ``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5`` (its
    brackets percent-encoded by recent grpcio); None for a Unix socket or anything else."""
    kind, _, address = unquote(peer or "").partition(":")
    if kind not in ("ipv4", "ipv6"):
        return None
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else 0


def _metadata_of(context: aio.ServicerContext) -> dict[str, str]:
    return {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}


class _Servicer:
    """The RPCs: each answers through :meth:`_serve`, which audits and counts it."""

    def __init__(self, platform: Platform) -> None:
        self._platform = platform
        self._limit = platform.settings.max_request_bytes

    # -- the RPCs --------------------------------------------------------------------------

    async def ServerLive(self, _request: Any, _context: aio.ServicerContext) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, _request: Any, _context: aio.ServicerContext) -> Any:
        problems = await readiness_problems(self._platform)  # the same truth as /readyz
        return pb.ServerReadyResponse(ready=not problems)

    async def ServerMetadata(self, request: Any, context: aio.ServicerContext) -> Any:
        async def answer(_trail: AuditTrail, _caller: Caller) -> Any:
            return pb.ServerMetadataResponse(
                name="algora", version=__version__, extensions=service.EXTENSIONS
            )

        return await self._rpc("ServerMetadata", "server.describe", request, context, answer)

    async def ModelReady(self, request: Any, context: aio.ServicerContext) -> Any:
        async def answer(trail: AuditTrail, caller: Caller) -> Any:
            target = Target.named(request.name, request.version, caller)
            trail.resource = target.resource
            try:
                await service.resolve(self._platform.calls, caller, target)
            except VersionNotReady:
                return pb.ModelReadyResponse(ready=False)
            return pb.ModelReadyResponse(ready=True)

        return await self._rpc("ModelReady", "model.describe", request, context, answer)

    async def ModelMetadata(self, request: Any, context: aio.ServicerContext) -> Any:
        async def answer(trail: AuditTrail, caller: Caller) -> Any:
            target = Target.named(request.name, request.version, caller)
            trail.resource = target.resource
            resolved = await service.resolve(self._platform.calls, caller, target)
            described = service.describe(target, resolved)
            return pb.ModelMetadataResponse(
                name=described["name"],
                versions=described["versions"],
                platform=described["platform"],
                inputs=[tensor_metadata(t) for t in described["inputs"]],
                outputs=[tensor_metadata(t) for t in described["outputs"]],
            )

        return await self._rpc("ModelMetadata", "model.describe", request, context, answer)

    async def ModelInfer(self, request: Any, context: aio.ServicerContext) -> Any:
        answer = self._inference(request, context)
        return await self._rpc("ModelInfer", "model.call", request, context, answer)

    async def ModelStreamInfer(
        self, requests: AsyncIterator[Any], context: aio.ServicerContext
    ) -> AsyncIterator[Any]:
        """Triton's streaming inference: each request on the stream is one call (authenticated by
        the stream's metadata, admitted, audited and counted like a ModelInfer); answers come
        back as they finish, matched by the request's ``id``; a refused or failed request
        answers with its ``error_message`` and leaves the stream open."""
        metadata = _metadata_of(context)
        metadata.pop("x-request-id", None)  # each request on the stream gets its own
        answers: asyncio.Queue[Any] = asyncio.Queue()
        room = asyncio.Semaphore(_STREAM_IN_FLIGHT)

        async def one(request: Any) -> None:
            try:
                response, error, _trailing = await self._serve(
                    "ModelStreamInfer", "model.call", request, metadata, context.peer(),
                    self._inference(request, context),
                )  # fmt: skip
                if error is None:
                    await answers.put(pb.ModelStreamInferResponse(infer_response=response))
                else:
                    named = pb.ModelInferResponse(id=request.id, model_name=request.model_name)
                    refused = pb.ModelStreamInferResponse(error_message=error.message)
                    refused.infer_response.CopyFrom(named)
                    await answers.put(refused)
            finally:
                room.release()

        async def read() -> None:
            async with asyncio.TaskGroup() as group:
                async for request in requests:
                    await room.acquire()  # past the bound, stop reading: gRPC's flow control
                    group.create_task(one(request))
            await answers.put(None)

        reader = asyncio.create_task(read())
        try:
            while (answer := await answers.get()) is not None:
                yield answer
            await reader  # a broken stream raises here
        finally:
            reader.cancel()

    def _inference(
        self, request: Any, context: aio.ServicerContext
    ) -> Callable[[AuditTrail, Caller], Awaitable[Any]]:
        """The answer to one inference request, for :meth:`_serve`."""
        calls = self._platform.calls

        async def answer(trail: AuditTrail, caller: Caller) -> Any:
            target = Target.named(request.model_name, request.model_version, caller)
            trail.resource = target.resource
            calls.admit(caller, target.owner, target.name)
            resolved = await service.resolve(calls, caller, target)
            infer = infer_of(request, self._limit)
            remaining = context.time_remaining()
            call = service.infer_call(
                caller, target, resolved, infer,
                request_id=trail.request_id or new_request_id(), trail=trail,
                # A little before the client's deadline: the server says why, and audits it.
                timeout=None if remaining is None else max(0.001, remaining - 0.05),
            )  # fmt: skip
            served = await calls.call(call)
            described, payload = service.answer_of(served.result)
            response = pb.ModelInferResponse(
                model_name=target.shown, model_version=served.version.semver, id=request.id
            )
            for _wanted, descriptor, raw in selected(infer, described, payload):
                response.outputs.add(
                    name=descriptor["name"],
                    datatype=descriptor["datatype"],
                    shape=descriptor["shape"],
                )
                response.raw_output_contents.append(bytes(raw))
            return response

        return answer

    # -- what every RPC but the health checks does ------------------------------------------

    async def _rpc(
        self,
        method: str,
        action: str,
        request: Any,
        context: aio.ServicerContext,
        answer: Callable[[AuditTrail, Caller], Awaitable[Any]],
    ) -> Any:
        """One unary RPC: :meth:`_serve`, then its answer or its error status."""
        response, error, trailing = await self._serve(
            method, action, request, _metadata_of(context), context.peer(), answer
        )
        if error is not None:
            await context.abort(grpc_code(error), error.message, trailing_metadata=trailing)
        context.set_trailing_metadata(trailing)
        return response

    async def _serve(
        self,
        method: str,
        action: str,
        request: Any,
        metadata: dict[str, str],
        peer_name: str | None,
        answer: Callable[[AuditTrail, Caller], Awaitable[Any]],
    ) -> tuple[Any, AlgoraError | None, tuple[tuple[str, str], ...]]:
        """Authenticate, answer, then count and (for a call or a refusal) audit the request
        before the client sees the answer, as the HTTP middleware does: the response or the
        error to send, and the trailing metadata."""
        received_us = time.time_ns() // 1000
        started = time.perf_counter()
        request_id = metadata.get("x-request-id") or new_request_id()
        trail = AuditTrail(
            action=action, request_id=request_id, traceparent=metadata.get("traceparent")
        )
        CURRENT_TRAIL.set(trail)
        peer = peer_address(peer_name)
        response: Any = None
        error: AlgoraError | None = None
        status = 200
        try:
            caller = await self._authenticate(metadata.get("authorization"), peer, trail)
            response = await answer(trail, caller)
        except AlgoraError as exc:
            error, status = exc, service.status(exc)
            trail.error_code = exc.code
        except asyncio.CancelledError:  # the client hung up or its deadline passed
            trail.error_code, status = "client_disconnected", CLIENT_GONE_STATUS
            await self._record(method, request, None, trail, status, peer, metadata, started,
                               received_us)  # fmt: skip
            raise
        except Exception:
            logger.exception("unhandled error in %s", method)
            error = AlgoraError("internal error: the server logged the details")
            trail.error_code, status = "internal_error", 500
        size = response.ByteSize() if response is not None else None
        audited = await self._record(
            method, request, size, trail, status, peer, metadata, started, received_us
        )
        trailing = [("x-request-id", request_id)]
        if not audited:
            error = Unavailable("the audit log cannot be written, so the request was not answered")
        if error is not None:
            wait = retry_after(error)
            if wait is not None:
                trailing.append(("retry-after", str(wait)))
        return response, error, tuple(trailing)

    async def _authenticate(
        self, authorization: str | None, peer: tuple[str, int] | None, trail: AuditTrail
    ) -> Caller:
        authenticator = self._platform.authenticator
        caller = authenticator.cached(authorization)
        if caller is None:
            address = peer[0] if peer else None
            caller = await asyncio.to_thread(authenticator.authenticate, authorization, address)
        trail.caller = caller
        if caller.delegation is not None:
            trail.parent_request_id = caller.delegation.request_id
        if caller.model_calls_only:
            raise PermissionDenied(
                f"key '{caller.key_id}' may only be used by calls made from inside models"
            )
        return caller

    async def _record(
        self,
        method: str,
        request: Any,
        bytes_out: int | None,
        trail: AuditTrail,
        status: int,
        peer: tuple[str, int] | None,
        metadata: dict[str, str],
        started: float,
        received_us: int,
    ) -> bool:
        """Count the RPC and write its audit row (every call, every refusal of a key);
        False when the row could not be written."""
        seconds = time.perf_counter() - started
        platform = self._platform
        if platform.counting is not None:
            platform.counting.observe(
                trail.action, status, trail.resource, trail.version, trail.error_code, seconds,
                trail.alias,
            )  # fmt: skip
        if not platform.audit.enabled or not (trail.action == "model.call" or status in (401, 403)):
            return True
        headers = [
            (name.encode("latin-1"), metadata[name].encode("latin-1"))
            for name in ("authorization", "x-forwarded-for", "x-request-id")
            if name in metadata
        ]
        scope = {"client": peer, "headers": headers}
        row = request_row(
            platform.audit, scope, RequestHeaders(scope), trail, "POST", _SERVICE + method,
            status, received_us, started, request.ByteSize(), bytes_out,
        )  # fmt: skip
        try:
            await platform.audit.record_wire(row)
        except AlgoraError:
            return False
        return True


def _handler(servicer: _Servicer) -> grpc.GenericRpcHandler:
    handlers = {
        rpc.name: (
            grpc.stream_stream_rpc_method_handler
            if rpc.streaming
            else grpc.unary_unary_rpc_method_handler
        )(
            getattr(servicer, rpc.name),
            request_deserializer=rpc.request.FromString,
            response_serializer=rpc.response.SerializeToString,
        )
        for rpc in RPCS
    }
    return grpc.method_handlers_generic_handler(SERVICE.full_name, handlers)


class GrpcServer:
    """The gRPC server on ``settings.grpc_port``, on the running event loop: :meth:`start`
    in the app's lifespan, :meth:`stop` at its end."""

    def __init__(self, platform: Platform, port: int) -> None:
        self._platform = platform
        self._port = port
        self._server: Any = None

    async def start(self) -> None:
        settings = self._platform.settings
        limit = settings.max_request_bytes + _ENVELOPE_BYTES
        server = aio.server(options=[("grpc.max_receive_message_length", limit)])
        server.add_generic_rpc_handlers((_handler(_Servicer(self._platform)),))
        host = f"[{settings.host}]" if ":" in settings.host else settings.host  # IPv6
        address = f"{host}:{self._port}"
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError:  # how recent grpcio says it could not bind
            bound = 0
        if bound == 0:
            raise Unavailable(f"the gRPC port {address} cannot be bound: is it in use?")
        await server.start()
        self._server = server
        logger.info("Open Inference Protocol over gRPC on %s", address)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking RPCs; those running get ``grace`` seconds to answer."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
