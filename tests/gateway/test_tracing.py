"""OpenTelemetry traces of the call path, exported by the real OTLP/HTTP exporter to a real HTTP
receiver in this test: a caller's ``traceparent`` parents the call's span, and a call made from
inside a model is a child of the call it serves, in the same trace."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from algora.testing import write_model

from ..conftest import in_process

trace_service = pytest.importorskip(
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
    reason="the otel extra is not installed",
)

HELLO = 'def apply(input: str) -> str:\n    return "Hello " + input\n'
CALLER = """
import json, os, urllib.request


def apply(input: str) -> str:
    request = urllib.request.Request(
        os.environ["ALGORA_URL"] + "/v1/algo/admin/hello",
        data=input.encode(),
        headers={"Authorization": "Simple " + os.environ["ALGORA_KEY"],
                 "Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return "via caller: " + json.loads(answer.read())["result"]
"""
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver: keeps every span it is sent."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[Any] = []
        self.paths: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        export = trace_service.ExportTraceServiceRequest.FromString(body)
        self.server.paths.append(self.path)
        for resource in export.resource_spans:
            for scoped in resource.scope_spans:
                self.server.spans.extend(scoped.spans)
        answer = trace_service.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_call_tree_is_one_trace_under_the_callers_span(
    receiver: Receiver, tmp_path: Path
) -> None:
    endpoint = f"http://127.0.0.1:{receiver.server_address[1]}/v1/traces"
    with in_process(tmp_path / "data", otel_endpoint=endpoint) as gateway:
        gateway.client.publish(write_model(tmp_path / "hello", "hello", HELLO))
        gateway.client.publish(write_model(tmp_path / "caller", "caller", CALLER))
        answer = gateway.http.post(
            "/v1/algo/admin/caller",
            content="traced",
            headers={
                "Authorization": f"Simple {gateway.key}",
                "Content-Type": "text/plain",
                "traceparent": f"00-{TRACE_ID}-{PARENT_SPAN}-01",
                "X-Request-Id": "traced-1",
            },
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["result"] == "via caller: Hello traced"
    # Leaving the gateway shut its tracing down, which exported what it held.
    assert receiver.paths and set(receiver.paths) == {"/v1/traces"}
    mine = [s for s in receiver.spans if s.trace_id.hex() == TRACE_ID]
    by_name = {s.name: s for s in mine}
    outer, inner = by_name["algora.call admin/caller"], by_name["algora.call admin/hello"]
    assert outer.parent_span_id.hex() == PARENT_SPAN  # the caller's span is its parent
    assert inner.parent_span_id == outer.span_id  # the call from inside the model: its child
    workers = [s for s in mine if s.name == "algora.worker"]
    assert {w.parent_span_id for w in workers} == {outer.span_id, inner.span_id}
    attributes = {a.key: a.value.string_value for a in outer.attributes}
    assert attributes["algora.model"] == "admin/caller"
    assert attributes["algora.request_id"] == "traced-1"
    assert attributes["algora.version"] == "1.0.0"
    assert all(s.status.code != 2 for s in mine)  # STATUS_CODE_ERROR: none failed


def test_without_an_endpoint_there_is_no_tracing(tmp_path: Path) -> None:
    with in_process(tmp_path / "data") as gateway:
        platform = gateway.http.app.state.platform  # type: ignore[attr-defined]
        assert platform.tracing is None
