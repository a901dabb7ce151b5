"""OpenTelemetry traces of the call path, exported over OTLP (``pip install 'algora[otel]'``,
``ALGORA_OTEL_ENDPOINT``); off by default, and then the call path pays one ``None`` check.

Each model call is a span ``algora.call OWNER/NAME`` (kind SERVER) whose parent is the caller's
W3C ``traceparent`` (HTTP header or gRPC metadata) or, for a call made from inside a model, the
span of the call that model is serving: a call tree is one trace. Its child ``algora.worker``
covers the wait for a replica and the worker's answer. Spans carry the model, version, alias
and request id (never a caller or a payload) and end with an error status named by the error's
code. Only this module imports OpenTelemetry.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from collections.abc import Iterator
from typing import Any

from algora.errors import AlgoraError
from algora.settings import Settings

__all__ = ["INSTALL_HINT", "Tracing", "open_tracing"]

INSTALL_HINT = "pip install 'algora[otel]'"


class Tracing:
    """Makes the call path's spans; ``provider`` is an OpenTelemetry ``TracerProvider``."""

    def __init__(self, provider: Any) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._provider = provider
        self._tracer = provider.get_tracer("algora")
        self._propagator = TraceContextTextMapPropagator()
        self._kinds = SpanKind
        self._status, self._failed = Status, StatusCode.ERROR
        self._live: dict[str, Any] = {}
        """Request id -> the span of a call in progress (the parent of calls made inside it)."""

    @contextlib.contextmanager
    def call(
        self,
        model: str,
        version: str,
        request_id: str,
        *,
        traceparent: str | None,
        parent_request_id: str | None,
        alias: str | None,
    ) -> Iterator[str]:
        """The span of one model call (and its worker child); yields the trace id (hex)."""
        from opentelemetry import trace

        parent = self._live.get(parent_request_id) if parent_request_id else None
        if parent is not None:
            context = trace.set_span_in_context(parent)
        else:
            carrier = {"traceparent": traceparent} if traceparent else {}
            context = self._propagator.extract(carrier)
        attributes = {"algora.model": model, "algora.version": version,
                      "algora.request_id": request_id}  # fmt: skip
        if alias:
            attributes["algora.alias"] = alias
        span = self._tracer.start_span(
            f"algora.call {model}", context=context, kind=self._kinds.SERVER, attributes=attributes
        )
        self._live[request_id] = span
        try:
            with trace.use_span(span, end_on_exit=False, record_exception=False):
                worker = self._tracer.start_span("algora.worker", kind=self._kinds.INTERNAL)
                try:
                    with trace.use_span(worker, end_on_exit=False, record_exception=False):
                        yield format(span.get_span_context().trace_id, "032x")
                except BaseException as error:
                    worker.set_status(self._status(self._failed, _code(error)))
                    raise
                finally:
                    worker.end()
        except BaseException as error:
            span.set_status(self._status(self._failed, _code(error)))
            raise
        finally:
            self._live.pop(request_id, None)
            span.end()

    def shutdown(self) -> None:
        """Export what is buffered and stop (the gateway's shutdown)."""
        self._provider.shutdown()


def _code(error: BaseException) -> str:
    if isinstance(error, AlgoraError):
        return error.code
    return "client_disconnected" if isinstance(error, asyncio.CancelledError) else "internal_error"


def open_tracing(settings: Settings) -> Tracing | None:
    """The platform's tracing when ``ALGORA_OTEL_ENDPOINT`` is set, else None; an
    :class:`AlgoraError` saying what to install when the extra is missing."""
    if settings.otel_endpoint is None:
        return None
    if importlib.util.find_spec("opentelemetry.exporter.otlp.proto.http") is None:
        raise AlgoraError(f"ALGORA_OTEL_ENDPOINT is set but OpenTelemetry is not installed: "
                          f"{INSTALL_HINT}")  # fmt: skip
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": settings.otel_service}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otel_endpoint))
    )
    return Tracing(provider)
