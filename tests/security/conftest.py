"""The security suite's shared world: a gateway whose data folder sits beside planted canaries.

Layout of the session's root folder (one per xdist worker)::

    root/canary/secret.txt     a canary: never read into a response, never modified
    root/data/                 the gateway's data folder
    root/outside/              empty; nothing may ever appear in it

Requests go to the app as raw ASGI messages (``raw_path`` exactly as a client would send it):
HTTP clients normalize ``..`` segments away, which would hide exactly what is being tested.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import stat
import sys
import tempfile
import textwrap
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from algora.app import create_app
from algora.sdk.client import Client
from algora.settings import Settings
from algora.testing import RunningServer, write_model

from ..conftest import ECHO_MODEL
from .payloads import SEED

CANARY_TEXT = "canary-" + hashlib.sha256(os.urandom(16)).hexdigest()[:24]
MAX_ARCHIVE_BYTES = 2 * 1024 * 1024
MAX_ARCHIVE_MEMBERS = 200


def pytest_report_header() -> str:
    return f"security suite seed: {SEED} (random.Random(SEED) draws every sample)"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and "security" in str(item.path):
        report.sections.append(("security seed", f"random.Random({SEED})"))


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: str = ""

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class World:
    root: Path
    data_dir: Path
    canary: Path
    outside: Path
    http: TestClient
    key: str
    client: Client
    secrets: list[str] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Simple {self.key}"}

    def rng(self, salt: str) -> random.Random:
        return random.Random(f"{SEED}:{salt}")

    def raw(
        self,
        method: str,
        raw_path: str,
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        query: str = "",
        host: str | None = "testserver",
    ) -> Response:
        """One request with ``raw_path`` sent as it is (the server decodes it, as uvicorn does)."""
        wire = _wire(raw_path)
        merged = {**self.auth, **(headers or {})}
        header_list = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in merged.items()
        ]
        if host is not None:
            header_list.insert(0, (b"host", host.encode("latin-1")))
        if body:
            header_list.append((b"content-length", str(len(body)).encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": urllib.parse.unquote(wire.decode("ascii")),  # as uvicorn does
            "raw_path": wire,
            "query_string": query.encode("ascii"),
            "root_path": "",
            "headers": header_list,
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        portal = self.http.portal
        assert portal is not None
        status, response_headers, chunks = portal.call(_asgi, self.http.app, scope, body)
        sent = urllib.parse.unquote(f"{raw_path} {query} {body[:4096]!r}", errors="replace")
        return Response(status, response_headers, chunks, sent)

    def outside_snapshot(self) -> dict[str, tuple[int, int, str]]:
        """Every entry under the root but outside the data folder: (mode, size, sha256)."""
        entries: dict[str, tuple[int, int, str]] = {}
        for folder, dirnames, filenames in os.walk(self.root):
            base = Path(folder)
            if base == self.data_dir:
                dirnames.clear()
                continue
            for name in [*dirnames, *filenames]:
                path = base / name
                if path == self.data_dir:
                    continue
                st = path.lstat()
                digest = ""
                if stat.S_ISREG(st.st_mode):
                    digest = hashlib.sha256(path.read_bytes()).hexdigest()
                entries[str(path.relative_to(self.root))] = (st.st_mode, st.st_size, digest)
        return entries


def _wire(raw_path: str) -> bytes:
    """Percent-encode what cannot travel in an HTTP request line (non-ASCII, controls, space)."""
    out = []
    for byte in raw_path.encode("utf-8", errors="surrogateescape"):
        if byte <= 0x20 or byte >= 0x7F or chr(byte) in '"<>`{}|^#?':
            out.append(f"%{byte:02X}")
        else:
            out.append(chr(byte))
    return "".join(out).encode("ascii")


async def _asgi(app: Any, scope: dict[str, Any], body: bytes) -> tuple[int, dict[str, str], bytes]:
    sent_body = False
    status = 0
    headers: dict[str, str] = {}
    chunks: list[bytes] = []
    answered = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await answered.wait()  # as servers do: the client stays until it has its answer
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            headers.update(
                {k.decode("latin-1"): v.decode("latin-1") for k, v in message.get("headers", [])}
            )
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    try:
        await app(scope, receive, send)
    finally:
        answered.set()
    return status, headers, b"".join(chunks)


# -- leaks ------------------------------------------------------------------------------------
_TRACEBACK = "Traceback (most recent call last)"


def server_locations(world: World) -> list[str]:
    """Absolute places on the server's disk that no answer may name."""
    places = {
        str(world.root),
        str(world.root.resolve()),
        str(world.data_dir),
        str(world.data_dir.resolve()),
        str(Path(tempfile.gettempdir()).resolve()) + "/",
        str(Path.home()),
        str(Path(__file__).resolve().parents[2]),
        sys.prefix,
        sys.base_prefix,
        os.path.realpath(sys.base_prefix),
    }
    return sorted(p for p in places if len(p) > 4)


def leaks(world: World, response: Response) -> list[str]:
    """What the answer shows that it must not: server paths, sockets, tracebacks, secrets.

    A needle the request itself carried (a payload echoed in "no model '...'") is not a leak.
    Model stack traces (Algorithmia's ``stacktrace``) are allowed, but must name no server path.
    """
    text = response.text
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    model_trace = ""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        model_trace = str(error.get("stacktrace") or error.get("details", {}).get("stacktrace", ""))
    found: list[str] = []
    sent = response.sent
    for place in server_locations(world):
        if place in text and place not in sent:
            found.append(f"server path {place!r}")
    if CANARY_TEXT in text:
        found.append("canary content")
    if "root:x:0:0" in text and "root:x:0:0" not in sent:
        found.append("/etc/passwd content")
    for secret in [world.key, *world.secrets]:
        if secret and secret in text and secret not in sent:
            found.append("a secret key")
    for marker in (".sock", "unix:/", "sqlite:///", "postgresql://"):
        if marker in text and marker not in sent:
            found.append(f"socket or database URL {marker!r}")
    without_trace = text.replace(json.dumps(model_trace)[1:-1], "") if model_trace else text
    if _TRACEBACK in without_trace or 'File \\"/' in without_trace:
        found.append("a server traceback")
    if model_trace and ('File "/' in model_trace or "algora_runtime" in model_trace):
        found.append("a model trace naming server files or runtime frames")
    return found


# -- the world --------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("security")
    canary = root / "canary" / "secret.txt"
    canary.parent.mkdir()
    canary.write_text(CANARY_TEXT)
    (root / "outside").mkdir()
    data_dir = root / "data"
    settings = Settings(
        data_dir=data_dir,
        default_call_timeout=20,
        max_archive_bytes=MAX_ARCHIVE_BYTES,
        max_archive_members=MAX_ARCHIVE_MEMBERS,
        allowed_hosts=["localhost", "127.0.0.1", "::1", "testserver"],
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        key = (data_dir / "admin.key").read_text().strip()
        client = Client("http://testserver", key, http=http)
        models = root / "models"
        echo = write_model(
            models / "echo",
            "echo",
            ECHO_MODEL,
            entrypoint="model:Echo",
            example='input = "ping"',
            extra_manifest="\n[serving]\ntimeout = 2\n",
        )
        client.publish(echo)
        yield World(root, data_dir, canary, root / "outside", http, key, client)
    problems = group_or_world_readable(data_dir)
    assert not problems, f"group- or world-readable after the suite: {problems[:20]}"


def group_or_world_readable(data_dir: Path) -> list[str]:
    found = []
    for folder, dirnames, filenames in os.walk(data_dir):
        for name in [".", *dirnames, *filenames]:
            path = Path(folder) / name
            st = path.lstat()
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o077:
                found.append(f"{oct(stat.S_IMODE(st.st_mode))} {path.relative_to(data_dir)}")
    return found


def echo_model_source() -> str:
    return textwrap.dedent(ECHO_MODEL)


@pytest.fixture(scope="session")
def cli_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """``algora serve`` as a real process, for the CLI and the raw-socket samples."""
    data_dir = tmp_path_factory.mktemp("security-server") / "data"
    with RunningServer(data_dir) as running:
        yield running
    problems = group_or_world_readable(data_dir)
    assert not problems, f"group- or world-readable after the suite: {problems[:20]}"
