"""What an independent probe of a running server found (issue 11, findings 1-3), reproduced
against a real server on a free port, over raw sockets where a client library would not send
the request (huge, slow or unfinished bodies), and with git as a subprocess.

1. A body is never read before the key is checked, never past its route family's cap, and a
   stalled body is cut off (408); ``/healthz`` keeps answering meanwhile.
2. Bad input is a 400 (401 for credentials), never a 500: deeply nested JSON, Basic credentials
   that are not text, integers past 64 bits.
3. Non-finite numbers, lone surrogates and invalid UTF-8 are refused with a 400 that says why.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from algora.testing import RunningServer

from .hostile import answer, closed_by_server, connect, request_head, send_flood

API_CAP = 128 * 1024  # above the 102400-byte stalled body of the probe
READ_TIMEOUT = 1.0
DEEP = b"[" * 5000 + b"]" * 5000
HUNDRED_MB = 100 * 1024 * 1024
TRACEBACK = "Traceback (most recent call last)"
_JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env = {
        "ALGORA_MAX_API_BODY_BYTES": str(API_CAP),
        "ALGORA_BODY_READ_TIMEOUT": str(READ_TIMEOUT),
    }
    with RunningServer(tmp_path_factory.mktemp("hostile") / "data", env=env) as running:
        yield running


@pytest.fixture(scope="module")
def http(server: RunningServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Simple {server.key}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def algorithm_id(http: httpx.Client) -> int:
    """A model created the Algorithmia way (no build), for the routes that take its id."""
    created = http.post("/v1/algorithms/admin", json={"name": "hostile"})
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


@pytest.fixture(scope="module")
def collection(http: httpx.Client) -> str:
    created = http.post("/v1/data/.my", json={"name": "hostile"})
    assert created.status_code in (200, 201), created.text
    return "/v1/data/.my/hostile"


def _no_500(server: RunningServer, response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    assert TRACEBACK not in response.text
    assert TRACEBACK not in server.log()


def _error_message(response: httpx.Response) -> str:
    error = response.json()["error"]
    return str(error["message"])


# -- 1. bodies: authenticated first, capped, not too slow --------------------------------------
UNAUTHENTICATED_ROUTES = [
    ("POST", "/api/v1/keys", {"Content-Type": "application/json"}),
    ("POST", "/v1/users", {"Content-Type": "application/json"}),
    ("PUT", "/v1/algorithms/admin/hostile", {"Content-Type": "application/json"}),
    ("PUT", "/v1/data/.my/hostile/big.bin", {"Content-Type": "application/octet-stream"}),
    ("POST", "/v1/algo/admin/hostile", {"Content-Type": "application/json"}),
    ("POST", "/git/admin/hostile.git/git-receive-pack", {}),
]
CREDENTIALS = {
    "no key": {},
    "unknown key": {"Authorization": "Simple simNotAKeyThatExists0000000000000000000000000"},
    "basic, not text": {"Authorization": "Basic \xff\xff"},
}


@pytest.mark.parametrize("credential", CREDENTIALS, ids=list(CREDENTIALS))
@pytest.mark.parametrize(("method", "path", "headers"), UNAUTHENTICATED_ROUTES)
def test_a_body_without_a_valid_key_is_refused_before_it_is_read(
    server: RunningServer, method: str, path: str, headers: dict[str, str], credential: str
) -> None:
    got, flood = send_flood(
        server.port, method, path, {**headers, **CREDENTIALS[credential]}, HUNDRED_MB
    )
    assert got.status == 401, got.body
    assert got.seconds < 2.0, f"the 401 took {got.seconds:.3f} s"
    assert got.headers.get("connection") == "close"
    # What the server took of the body is what the sockets' buffers hold, not the body.
    assert flood.sent < 32 * 1024 * 1024, f"{flood.sent} bytes of the body were taken"


def test_healthz_keeps_answering_while_unauthenticated_bodies_arrive(
    server: RunningServer,
) -> None:
    stop = threading.Event()

    def attack() -> None:
        while not stop.is_set():
            send_flood(server.port, "POST", "/api/v1/keys", {}, HUNDRED_MB)

    attackers = [threading.Thread(target=attack, daemon=True) for _ in range(4)]
    for thread in attackers:
        thread.start()
    latencies = []
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for _ in range(40):
                started = time.monotonic()
                assert client.get("/healthz").status_code == 200
                latencies.append(time.monotonic() - started)
    finally:
        stop.set()
        for thread in attackers:
            thread.join(timeout=30)
    assert max(latencies) < 1.0, f"/healthz took up to {max(latencies):.3f} s"
    assert statistics.median(latencies) < 0.25


def test_a_declared_body_over_the_cap_is_refused_413_before_it_is_read(
    server: RunningServer,
) -> None:
    headers = {"Authorization": f"Simple {server.key}", "Content-Type": "application/json"}
    got, flood = send_flood(server.port, "POST", "/api/v1/keys", headers, HUNDRED_MB)
    assert got.status == 413, got.body
    assert json.loads(got.body)["error"]["code"] == "payload_too_large"
    assert got.headers.get("connection") == "close"
    assert flood.sent < 32 * 1024 * 1024


def test_a_streamed_body_over_the_cap_is_refused_413(http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(2 * API_CAP // 1024):
            yield b" " * 1024

    response = http.post(
        "/api/v1/keys", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"


def test_model_calls_keep_their_own_cap(http: httpx.Client) -> None:
    """A call body may be larger than a management body (max_request_bytes, 64 MiB)."""
    body = json.dumps("x" * (2 * API_CAP))
    response = http.post("/v1/algo/admin/hostile", content=body, headers=_JSON)
    assert response.status_code != 413, response.text


@pytest.mark.parametrize("route", ["/api/v1/keys", "data"])
def test_a_stalled_body_is_cut_off_with_408(
    server: RunningServer, collection: str, route: str
) -> None:
    path = f"{collection}/stalled.bin" if route == "data" else route
    method = "PUT" if route == "data" else "POST"
    sock = connect(server.port)
    try:
        headers = {"Authorization": f"Simple {server.key}", "Content-Length": "102400", **_JSON}
        sock.sendall(request_head(server.port, method, path, headers) + b"[1,2,3,4,")
        started = time.monotonic()
        got = answer(sock, started)
        assert got.status == 408, got.body
        assert READ_TIMEOUT <= got.seconds < READ_TIMEOUT + 3
        assert got.headers.get("connection") == "close"
        assert closed_by_server(sock, within=5)
    finally:
        sock.close()


# -- 2. no 500 from bad input --------------------------------------------------------------------
def _deep_json_routes(algorithm_id: int) -> list[tuple[str, str]]:
    return [
        ("POST", "/v1/users"),
        ("POST", "/v1/organizations"),
        ("POST", "/v1/data/.my"),
        ("POST", f"/v1/algorithms/{algorithm_id}/secrets"),
        ("PUT", "/v1/algorithms/admin/hostile"),
        ("POST", "/api/v1/keys"),
        ("PUT", "/api/v1/models/admin/hostile/aliases/prod"),
    ]


def test_deeply_nested_json_is_a_400_everywhere(
    server: RunningServer, http: httpx.Client, algorithm_id: int
) -> None:
    for method, path in _deep_json_routes(algorithm_id):
        response = http.request(method, path, content=DEEP, headers=_JSON)
        _no_500(server, response)
        assert response.status_code == 400, (path, response.text)
        assert "nested" in response.text, (path, response.text)


def test_basic_credentials_that_are_not_text_are_a_401(
    server: RunningServer, tmp_path: Path
) -> None:
    url = f"{server.url}/git/admin/hostile.git"
    with httpx.Client(timeout=10) as client:
        response = client.get(
            f"{url}/info/refs",
            params={"service": "git-upload-pack"},
            headers={b"Authorization": b"Basic \xff\xff"},
        )
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Basic")
    git = subprocess.run(
        ["git", "-c", "http.extraHeader=Authorization: Basic \xff\xff", "ls-remote", url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "HOME": str(tmp_path)},
        check=False,
    )
    assert git.returncode != 0
    # git asks for a username only after a 401; a 500 reads "returned error: 500".
    assert "could not read Username" in git.stderr, git.stderr
    assert "error: 500" not in git.stderr, git.stderr
    assert TRACEBACK not in server.log()


@pytest.mark.parametrize("cursor", ["99999999999999999999999", "9223372036854775808"])
def test_an_integer_past_64_bits_is_a_400(
    server: RunningServer, http: httpx.Client, cursor: str
) -> None:
    response = http.get("/api/v1/audit", params={"cursor": cursor})
    _no_500(server, response)
    assert response.status_code == 400
    assert "cursor" in _error_message(response)


# -- 3. non-finite numbers, surrogates, invalid UTF-8 -------------------------------------------
@pytest.mark.parametrize("timeout", ["nan", "inf", "-inf", "1e309", "NaN", "Infinity"])
def test_a_call_timeout_must_be_a_finite_number(
    server: RunningServer, http: httpx.Client, timeout: str
) -> None:
    response = http.post(
        "/v1/algo/admin/hostile", params={"timeout": timeout}, content=b"null", headers=_JSON
    )
    _no_500(server, response)
    assert response.status_code == 400, response.text
    assert "finite" in response.json()["error"]["message"]


NOT_JSON_NUMBERS = {
    "NaN": (b'{"name": "x", "rate_per_second": NaN}', "NaN"),
    "Infinity": (b'{"name": "x", "rate_per_second": Infinity}', "Infinity"),
    "-Infinity": (b'{"name": "x", "rate_per_second": -Infinity}', "Infinity"),
    "1e999999": (b'{"name": "x", "rate_per_second": 1e999999}', "finite"),
    "lone surrogate": (b'{"name": "\\ud800x"}', "surrogate"),
    "invalid UTF-8": (b'{"name": "\xff\xfe"}', "UTF-8"),
    "CESU surrogate bytes": (b'{"name": "\xed\xa0\x80"}', "UTF-8"),
}


@pytest.mark.parametrize("case", NOT_JSON_NUMBERS, ids=list(NOT_JSON_NUMBERS))
@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/v1/keys"), ("POST", "/v1/users"), ("POST", "/v1/data/.my")],
)
def test_json_that_is_not_portable_is_refused_saying_why(
    server: RunningServer, http: httpx.Client, method: str, path: str, case: str
) -> None:
    body, reason = NOT_JSON_NUMBERS[case]
    response = http.request(method, path, content=body, headers=_JSON)
    _no_500(server, response)
    assert response.status_code == 400, response.text
    assert reason in _error_message(response), response.text


@pytest.mark.parametrize("raw", ["%FF", "%ED%A0%80", "%C3%28", "caf%E9"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_a_data_path_that_is_not_utf8_is_refused(
    server: RunningServer, http: httpx.Client, collection: str, method: str, raw: str
) -> None:
    url = httpx.URL(f"{server.url}{collection}/file-{raw}.txt")
    assert raw in url.raw_path.decode("ascii")
    response = http.request(method, url, content=b"data" if method == "PUT" else None)
    _no_500(server, response)
    assert response.status_code == 400, response.text
    assert "UTF-8" in _error_message(response)
    listing: Any = http.get(collection).json()
    assert all("\ufffd" not in str(entry) for entry in listing.get("files", []))
