"""Path traversal against every route that takes a path or a name, and the CLI's names.

The routes come from the app itself: the OpenAPI document (fetched with a key, as a client
would) plus the routes it leaves out. Every path parameter, and every query parameter that
names something, receives generated payloads (see ``payloads.py``); the other parameters get
real values so each payload travels as deep as it can. An escape is any response that shows
the canary or a system file, or any change outside the data folder; a server error is any 5xx.
"""

from __future__ import annotations

import io
import itertools
import os
import socket
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from fastapi.routing import APIRoute

from algora.modelfolder.packing import pack_directory

from .conftest import CANARY_TEXT, Response, World, leaks
from .payloads import PATH_PARAM, sample, traversal_payloads

NAME_QUERIES = frozenset({"principal", "model", "request_id", "version"})
REAL_VALUES = {"owner": "admin", "name": "echo", "version": "1.0.0", "spec": "1.0.0"}


def payloads(world: World) -> list[str]:
    return traversal_payloads("canary/secret.txt", str(world.canary))


def operations(world: World) -> list[tuple[str, str, list[str]]]:
    """(method, path template, query parameters that name things) for every route."""
    document = world.http.get("/api/v1/openapi.json", headers=world.auth).json()
    found: dict[tuple[str, str], list[str]] = {}
    for template, item in document["paths"].items():
        for method, operation in item.items():
            queries = [
                p["name"]
                for p in operation.get("parameters", [])
                if p["in"] == "query" and p["name"] in NAME_QUERIES
            ]
            found[(method.upper(), template)] = queries
    for route in world.http.app.routes:  # type: ignore[attr-defined]
        if isinstance(route, APIRoute) and not route.include_in_schema:
            for method in route.methods:
                found.setdefault((method, route.path), [])
    return [(method, template, queries) for (method, template), queries in sorted(found.items())]


def body_for(world: World, method: str, template: str) -> tuple[bytes, dict[str, str]]:
    if template.endswith("/versions") and method == "POST":
        buffer = io.BytesIO()
        pack_directory(world.root / "models" / "echo", buffer)
        return buffer.getvalue(), {"content-type": "application/gzip"}
    if method == "PATCH" and "{version}" in template:
        return b'{"deprecated": false}', {"content-type": "application/json"}
    if method == "PATCH":
        return b'{"description": "an echo"}', {"content-type": "application/json"}
    if template.startswith("/v1/algo"):
        return b'"ping"', {"content-type": "application/json"}
    if method == "POST":
        return b'{"name": "x"}', {"content-type": "application/json"}
    return b"", {}


def check(world: World, response: Response, label: str) -> None:
    assert response.status < 500, f"{label}: server error {response.status}: {response.text}"
    assert CANARY_TEXT not in response.text, f"{label}: the canary was read"
    found = leaks(world, response)
    assert not found, f"{label}: {found}: {response.text[:500]}"


def test_every_route_and_name_parameter_resists_traversal(world: World) -> None:
    generated = payloads(world)
    assert len(generated) >= 500
    rng = world.rng("routes")
    slots: list[tuple[str, str, str, str]] = []  # (method, template, where, parameter)
    for method, template, queries in operations(world):
        slots += [(method, template, "path", p) for p in PATH_PARAM.findall(template)]
        slots += [(method, template, "query", q) for q in queries]
    assert len(slots) >= 20, slots
    # Every payload goes to at least one slot, and every slot gets a fair share.
    per_slot = max(24, 2 * len(generated) // len(slots))
    order = rng.sample(generated, len(generated))
    cycle = itertools.cycle(order)
    before = world.outside_snapshot()
    sent = 0
    for method, template, where, parameter in slots:
        body, headers = body_for(world, method, template)
        for payload in [next(cycle) for _ in range(per_slot)]:
            values = {**REAL_VALUES, "key_id": "k" * 12}
            query = ""
            if where == "path":
                values[parameter] = payload
            else:
                query = f"{parameter}={urllib.parse.quote(payload, safe='%')}"
            path = PATH_PARAM.sub(lambda m, v=values: v.get(m.group(1), "x"), template)
            response = world.raw(method, path, body=body, headers=headers, query=query)
            check(world, response, f"{method} {path} ?{query} [{where} {parameter}]")
            sent += 1
    assert sent >= 500
    assert world.canary.read_text() == CANARY_TEXT
    assert world.outside_snapshot() == before, "something changed outside the data folder"


def test_unknown_paths_resist_traversal(world: World) -> None:
    """Routes that do not exist: prefixes of real ones, the root, static-looking places."""
    rng = world.rng("unknown")
    prefixes = ["/", "/api/v1/", "/v1/algo/", "/static/", "/v1/data/", "/api/v1/models/admin/"]
    for prefix, payload in itertools.product(prefixes, sample(payloads(world), 40, rng)):
        for method in ("GET", "POST"):
            response = world.raw(method, prefix + payload)
            check(world, response, f"{method} {prefix}{payload}")
            assert response.status in (400, 401, 403, 404, 405), response.status


def test_a_real_server_sees_the_same_bytes(world: World, cli_server: Any) -> None:
    """A sample through a real socket and uvicorn's own parser, request line byte for byte."""
    rng = world.rng("socket")
    port = int(cli_server.url.rsplit(":", 1)[1])
    auth = f"Simple {cli_server.key}".encode()
    templates = ["/api/v1/models/admin/{p}", "/api/v1/models/{p}/x/versions/1.0.0/lock"]
    templates += ["/v1/algo/admin/{p}", "/api/v1/models/admin/x/versions/{p}/log"]
    for template, payload in itertools.product(templates, sample(payloads(world), 15, rng)):
        target = template.replace("{p}", payload).encode("utf-8", errors="surrogateescape")
        target = b"".join(bytes([b]) if 0x20 < b < 0x7F else f"%{b:02X}".encode() for b in target)
        method = b"POST" if template.startswith("/v1/algo") else b"GET"
        request = (
            method + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: " + auth
            + b"\r\nContent-Type: application/json\r\nContent-Length: 4\r\n"
            + b"Connection: close\r\n\r\nnull"
        )  # fmt: skip
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(request)
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
        status = int(raw.split(b" ", 2)[1])
        text = raw.decode("utf-8", errors="replace")
        assert status < 500, f"{target!r}: {status} {text[:300]}"
        assert CANARY_TEXT not in text
        assert "root:x:0:0" not in text


# -- the CLI ----------------------------------------------------------------------------------
def algora(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "algora", *args],
        capture_output=True,
        text=True,
        errors="replace",
        env={**os.environ, "COLUMNS": "200", **env},
        cwd=cwd,
        timeout=60,
    )


def test_cli_names_and_paths_resist_traversal(
    world: World, cli_server: Any, tmp_path: Path
) -> None:
    """``call``, ``versions``, ``publish``, ``init`` and ``serve --data-dir`` in subprocesses."""
    rng = world.rng("cli")
    chosen = sample([p for p in payloads(world) if "\x00" not in p], 3, rng)
    sandbox = tmp_path / "cwd" / "inner"
    sandbox.mkdir(parents=True)
    (tmp_path / "canary.txt").write_text(CANARY_TEXT)
    env = {"ALGORA_URL": cli_server.url, "ALGORA_KEY": cli_server.key}
    before = sorted(str(p) for p in tmp_path.rglob("*") if sandbox not in (p, *p.parents))
    runs: list[tuple[str, ...]] = []
    for payload in chosen:
        runs += [
            ("call", f"admin/{payload}", "null"),
            ("versions", f"admin/{payload}"),
            ("versions", "admin/echo", payload, "--show", "log"),
            ("publish", payload),
        ]
    # ``init`` refuses any name that is not a plain model name; its output folder stays put.
    runs += [("init", payload) for payload in chosen[:2]]
    for args in runs:
        done = algora(*args, cwd=sandbox, env=env)
        output = done.stdout + done.stderr
        assert done.returncode in (0, 1, 2), f"{args}: {done.returncode}: {output}"
        assert CANARY_TEXT not in output, args
        assert "Traceback (most recent call last)" not in output, f"{args}: {output}"
    # serve --data-dir: names stay literal names in the current folder; the port is taken,
    # so each run stops right after setting up its data folder.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        for payload in rng.sample(["%2e%2e", "..;", "x\\..\\..\\y", "%c0%ae%c0%ae"], 2):
            done = algora("serve", "--data-dir", payload, "--port", port, cwd=sandbox, env={})
            assert done.returncode != 0
            assert "Traceback (most recent call last)" not in done.stdout + done.stderr
    after = sorted(str(p) for p in tmp_path.rglob("*") if sandbox not in (p, *p.parents))
    assert after == before, "the CLI wrote outside its working folder"
    assert (tmp_path / "canary.txt").read_text() == CANARY_TEXT


def test_cli_call_file_and_data_dir_reject_nothing_silently(tmp_path: Path) -> None:
    """Sanity: a payload that is not a path the OS can hold fails cleanly, not with a trace."""
    done = algora("init", "a" * 300, cwd=tmp_path, env={})
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []
