"""The call lane answers warm calls exactly as the general stack does, and only those.

Algorithmia ignores query options it does not know, and so does Algora: ``?via=stack`` sends
the same call down the general stack (the lane takes no query but ``timeout``). Each case is
sent both ways to a real ``algora serve``; the answers and their audit rows must agree.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from algora.protocols.algorithmia.lane import CallLane
from algora.testing import RunningServer, write_model

from ...conftest import ECHO_MODEL, InProcess, in_process

VOLATILE_METADATA = ("duration",)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("lane")
    with RunningServer(root / "data") as running:
        with running.client() as admin:
            admin.publish(write_model(root / "echo", "echo", ECHO_MODEL, entrypoint="model:Echo"))
        yield running


def _send(
    server: RunningServer, path: str, body: bytes, content_type: str, *, stack: bool, key: str
) -> tuple[httpx.Response, str]:
    request_id = "req-lane-" + uuid.uuid4().hex
    joiner = "&" if "?" in path else "?"
    url = server.url + path + (f"{joiner}via=stack" if stack else "")
    headers = {
        "Authorization": f"Simple {key}",
        "Content-Type": content_type,
        "X-Request-Id": request_id,
    }
    return httpx.post(url, content=body, headers=headers, timeout=30), request_id


def _comparable(response: httpx.Response) -> tuple[int, str | None, str | None, Any]:
    body: Any = response.text
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        metadata = body.get("metadata") if isinstance(body, dict) else None
        if isinstance(metadata, dict):
            for volatile in VOLATILE_METADATA:
                metadata.pop(volatile, None)
    return (
        response.status_code,
        response.headers.get("content-type"),
        response.headers.get("x-algora-version"),
        body,
    )


def _row(server: RunningServer, request_id: str) -> dict[str, Any]:
    response = httpx.get(
        server.url + "/api/v1/audit",
        params={"request_id": request_id},
        headers={"Authorization": f"Simple {server.key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    rows = response.json()
    assert len(rows) == 1, rows
    return dict(rows[0])


ROW_FIELDS = (
    "action", "status", "decision", "principal", "key_id", "auth_method", "resource",
    "version", "error_code", "bytes_in",
)  # fmt: skip

CASES = [
    ("/v1/algo/admin/echo", b'{"a": [1, 2]}', "application/json"),
    ("/v1/algo/admin/echo/latest", b'"hi"', "application/json"),
    ("/v1/algo/Admin/Echo", b'"camel"', "application/json"),
    ("/v1/algo/admin/echo/1.0.0", b'"pinned"', "application/json"),
    ("/v1/algo/admin/echo", b"plain words", "text/plain"),
    ("/v1/algo/admin/echo", b"\x00\x01\x02", "application/octet-stream"),
    ("/v1/algo/admin/echo", b'"bytes"', "application/json"),
    ("/v1/algo/admin/echo", b'"void"', "application/json"),
    ("/v1/algo/admin/echo", b'"boom"', "application/json"),
    ("/v1/algo/admin/echo", b"{not json", "application/json"),
    ("/v1/algo/admin/echo", b"", "application/json"),
    ("/v1/algo/admin/echo", b"x", "application/x-pickle"),
    ("/v1/algo/admin/echo", b"\xff\xfe", "text/plain"),
    ("/v1/algo/admin/echo/9.9.9", b'"missing version"', "application/json"),
    ("/v1/algo/admin/echo/not-a-spec!", b'"bad spec"', "application/json"),
    ("/v1/algo/admin/nothing", b'"no such model"', "application/json"),
    ("/v1/algo/nobody/echo", b'"no such owner"', "application/json"),
    ("/v1/algo/admin/echo?timeout=5", b'"timed"', "application/json"),
    ("/v1/algo/admin/echo?timeout=nan", b'"nan"', "application/json"),
    ("/v1/algo/admin/echo?timeout=0", b'"zero"', "application/json"),
]


@pytest.mark.parametrize(("path", "body", "content_type"), CASES)
def test_the_lane_and_the_stack_answer_and_audit_alike(
    served: RunningServer, path: str, body: bytes, content_type: str
) -> None:
    # Warm the key into the authenticator's cache, as every call after a caller's first is.
    _send(served, path, body, content_type, stack=False, key=served.key)
    lane, lane_id = _send(served, path, body, content_type, stack=False, key=served.key)
    stack, stack_id = _send(served, path, body, content_type, stack=True, key=served.key)
    assert _comparable(lane) == _comparable(stack), (lane.text, stack.text)
    assert lane.headers["x-request-id"] == lane_id
    assert stack.headers["x-request-id"] == stack_id
    lane_row, stack_row = _row(served, lane_id), _row(served, stack_id)
    for name in ROW_FIELDS:
        assert lane_row[name] == stack_row[name], (name, lane_row, stack_row)
    assert lane_row["bytes_out"] == len(lane.content)


def test_a_body_past_the_lane_is_served_by_the_stack(served: RunningServer) -> None:
    big = json.dumps("x" * 300_000).encode()
    response, request_id = _send(served, "/v1/algo/admin/echo", big, "application/json",
                                 stack=False, key=served.key)  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["result"]["echo"] == "x" * 300_000
    assert _row(served, request_id)["bytes_in"] == len(big)


class _Recorder:
    """An inner app that notes each request it is handed and answers 418."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def lane_in_front(tmp_path: Path) -> Iterator[tuple[InProcess, _Recorder]]:
    with in_process(tmp_path / "data") as gw:
        gw.client.publish(
            write_model(tmp_path / "echo", "echo", ECHO_MODEL, entrypoint="model:Echo")
        )
        assert gw.client.model("admin/echo").call("warm") is not None  # key cached, pool up
        lane = gw.http.app.middleware_stack  # type: ignore[attr-defined]
        assert isinstance(lane, CallLane)
        recorder = _Recorder()
        lane.app = recorder
        yield gw, recorder


def test_the_lane_answers_a_warm_call_without_the_stack(
    lane_in_front: tuple[InProcess, _Recorder],
) -> None:
    gw, recorder = lane_in_front
    response = gw.http.post("/v1/algo/admin/echo", json="fast", headers=gw.auth)
    assert response.status_code == 200, response.text
    assert response.json()["result"]["echo"] == "fast"
    assert recorder.paths == []


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v1/algo/admin/echo?stdout=true", {}),
        ("/v1/algo/admin/echo?output=raw", {}),
        ("/v1/algo/admin/echo/", {}),
        ("/v1/algo/admin/echo/1.0.0/extra", {}),
        ("/v1/algo/admin/echo", {"Authorization": "Simple not-a-cached-key"}),
        ("/v1/algo/admin/echo", {"Origin": "https://evil.example"}),
        ("/v1/algo/admin/echo", {"Host": "evil.example"}),
        ("/v1/algo/admin/%ff", {}),
    ],
)
def test_what_the_lane_cannot_answer_from_memory_goes_down_the_stack(
    lane_in_front: tuple[InProcess, _Recorder], path: str, headers: dict[str, str]
) -> None:
    gw, recorder = lane_in_front
    response = gw.http.post(path, json="x", headers={**gw.auth, **headers})
    assert response.status_code == 418
    assert len(recorder.paths) == 1
