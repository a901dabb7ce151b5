"""Bad ``Host`` headers and cross-origin requests against every state-changing route: refused.

The routes are every non-GET operation of the OpenAPI document plus the routes it leaves out.
A refusal must come before the route runs: the test checks that nothing changed.
"""

from __future__ import annotations

import itertools

import pytest
from fastapi.routing import APIRoute
from starlette.testclient import TestClient

from algora.app import create_app
from algora.settings import Settings

from .conftest import World, leaks
from .payloads import PATH_PARAM
from .test_traversal import REAL_VALUES, body_for

ATTACKER_NAMES = ("evil.example", "testserver.evil.example", "127.0.0.1.nip.io", "localhost.evil")


def bad_hosts() -> list[str]:
    found = ["", "[::2]", "0x7f000001", "2130706433", "127.1", "testserver\x00.evil", "@evil"]
    for name, port in itertools.product(ATTACKER_NAMES, ("", ":80", ":8000", ":443")):
        found.append(name + port)
    return found


def bad_origins() -> list[str]:
    found = ["null", "file://", "http://", "evil.example", "http://testserver.evil.example"]
    for scheme, name, port in itertools.product(
        ("http", "https", "ws"), ATTACKER_NAMES, ("", ":1234")
    ):
        found.append(f"{scheme}://{name}{port}")
    found += ["http://testserver:1234", "ws://testserver", "http://user@evil.example"]
    return found


def changing_operations(world: World) -> list[tuple[str, str]]:
    document = world.http.get("/api/v1/openapi.json", headers=world.auth).json()
    found = {
        (method.upper(), template)
        for template, item in document["paths"].items()
        for method in item
        if method.upper() not in ("GET", "HEAD", "OPTIONS")
    }
    for route in world.http.app.routes:  # type: ignore[attr-defined]
        if isinstance(route, APIRoute) and not route.include_in_schema:
            found |= {(m, route.path) for m in route.methods if m not in ("GET", "HEAD")}
    return sorted(found)


def _path(template: str) -> str:
    values = {**REAL_VALUES, "key_id": "k" * 12}
    return PATH_PARAM.sub(lambda m: values.get(m.group(1), "x"), template)


def _state(world: World) -> tuple[object, ...]:
    model = world.client.get_json("/api/v1/models/admin/echo")
    keys = world.client.get_json("/api/v1/keys")
    return (model["description"], len(keys), len(world.client.versions("admin/echo")))


def test_bad_hosts_and_foreign_origins_are_refused(world: World) -> None:
    operations = changing_operations(world)
    assert len(operations) >= 6, operations
    before = _state(world)
    cases = 0
    for (method, template), host in itertools.product(operations, bad_hosts()):
        body, headers = body_for(world, method, template)
        response = world.raw(method, _path(template), body=body, headers=headers, host=host)
        assert response.status == 400, f"{method} {template} Host {host!r}: {response.text}"
        assert response.json()["error"]["code"] == "bad_host"
        cases += 1
    for (method, template), origin in itertools.product(operations, bad_origins()):
        body, headers = body_for(world, method, template)
        response = world.raw(
            method, _path(template), body=body, headers={**headers, "origin": origin}
        )
        assert response.status == 403, f"{method} {template} Origin {origin!r}: {response.text}"
        assert response.json()["error"]["code"] == "forbidden_origin"
        assert not leaks(world, response)
        cases += 1
    # A request with no Host at all, and one with two Host headers, are refused too.
    response = world.raw("POST", "/api/v1/keys", body=b"{}", host=None)
    assert response.status == 400
    assert _state(world) == before, "a refused request changed something"
    assert cases >= 300


def test_own_origin_safe_methods_and_api_clients_pass(world: World) -> None:
    same = world.raw(
        "PATCH",
        "/api/v1/models/admin/echo",
        body=b'{"description": "same"}',
        headers={"content-type": "application/json", "origin": "http://testserver"},
    )
    assert same.status == 200, same.text
    plain = world.raw(
        "PATCH",
        "/api/v1/models/admin/echo",
        body=b'{"description": "plain"}',
        headers={"content-type": "application/json"},
    )
    assert plain.status == 200, plain.text
    read = world.raw("GET", "/api/v1/models", headers={"origin": "https://evil.example"})
    assert read.status == 200
    for path in ("/healthz", "/readyz"):
        assert world.raw("GET", path, host="10.1.2.3:8000").status == 200
    assert world.raw("GET", "/api/v1/models", host="TestServer:8000").status == 200


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST."])
def test_default_settings_answer_localhost_only(tmp_path, host: str) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        allowed_hosts=Settings.model_fields["allowed_hosts"].get_default(call_default_factory=True),
    )
    with TestClient(create_app(settings), base_url="http://localhost") as http:
        key = (tmp_path / "data" / "admin.key").read_text().strip()
        ok = http.get("/api/v1/whoami", headers={"Authorization": f"Simple {key}", "Host": host})
        assert ok.status_code == 200, ok.text
        bad = http.get(
            "/api/v1/whoami", headers={"Authorization": f"Simple {key}", "Host": "evil.example"}
        )
        assert bad.status_code == 400


def test_configured_origins_and_wildcard_hosts(tmp_path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", allowed_hosts=["*"], allowed_origins=["https://ui.example.com"]
    )
    with TestClient(create_app(settings), base_url="http://anything.example") as http:
        key = (tmp_path / "data" / "admin.key").read_text().strip()
        auth = {"Authorization": f"Simple {key}"}
        ok = http.post(
            "/api/v1/keys", json={}, headers={**auth, "Origin": "https://ui.example.com"}
        )
        assert ok.status_code == 201, ok.text
        refused = http.post(
            "/api/v1/keys", json={}, headers={**auth, "Origin": "https://ui.example.org"}
        )
        assert refused.status_code == 403
