"""Principals, organizations, roles, grants, visibility and scoped keys, through the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import inspect, select
from typer.testing import CliRunner

from algora.cli import access as access_cli
from algora.cli import catalog
from algora.cli.main import app as cli
from algora.db.engine import create_registry_engine
from algora.db.migrate import _config, upgrade
from algora.db.tables import ApiKey, utcnow
from algora.testing import write_model

from ..conftest import DATABASES, HELLO_MODEL, People, gateway_on
from ..helpers import new_users


class World(People):
    """acme (owner olga, admin adam, member mia, viewer vic), outsider otto, model acme/hello."""

    def call(self, who: str, model: str = "acme/hello", key: str | None = None) -> Any:
        secret = key or self.keys[who]
        headers = {"Authorization": f"Simple {secret}", "Content-Type": "text/plain"}
        return self.http.post(f"/v1/algo/{model}", content=b"x", headers=headers)

    def new_key(self, who: str, **body: Any) -> Any:
        return self.req(who, "POST", "/api/v1/keys", {"name": "t", **body})


@pytest.fixture(scope="module", params=DATABASES)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    with gateway_on(request, tmp_path_factory, "algora-access", default_call_timeout=20) as gw:
        w = World(gw)
        w.keys.update(new_users(gw.client, "olga", "adam", "mia", "vic", "otto"))
        assert w.req("olga", "POST", "/api/v1/orgs", {"name": "acme"}).status_code == 201
        for user, role in (("adam", "admin"), ("mia", "member"), ("vic", "viewer")):
            added = w.req("olga", "PUT", f"/api/v1/orgs/acme/members/{user}", {"role": role})
            assert added.status_code == 200, added.text
        root = tmp_path_factory.mktemp("access-models")
        w.sdk("olga").publish(write_model(root / "hello", "hello", HELLO_MODEL), owner="acme")
        yield w


def test_roles_in_the_owning_org_decide_calls_publishes_and_changes(world: World) -> None:
    w = world
    members = w.req("vic", "GET", "/api/v1/orgs/acme/members").json()
    assert {(m["member"], m["role"]) for m in members} == {
        ("olga", "owner"),
        ("adam", "admin"),
        ("mia", "member"),
        ("vic", "viewer"),
    }
    for who in ("olga", "adam", "mia", "vic"):
        assert w.call(who).status_code == 200, who
    assert w.call("otto").status_code == 404  # private: a stranger sees nothing
    garbage = {"Content-Type": "application/octet-stream"}
    for who, status in (("mia", 400), ("vic", 403), ("otto", 404)):
        published = w.http.post(
            "/api/v1/models/acme/hello/versions",
            content=b"not an archive",
            headers={**w.auth(who), **garbage},
        )
        assert published.status_code == status, (who, published.text)
    for who, status in (("adam", 200), ("mia", 403), ("vic", 403), ("otto", 404)):
        patched = w.req(who, "PATCH", "/api/v1/models/acme/hello", {"description": who})
        assert patched.status_code == status, (who, patched.text)
    assert w.req("otto", "GET", "/api/v1/orgs/acme/members").status_code == 404
    assert [o["name"] for o in w.req("vic", "GET", "/api/v1/orgs").json()] == ["acme"]
    assert w.req("otto", "GET", "/api/v1/orgs").json() == []


def test_membership_rules_owners_admins_and_the_last_owner(world: World) -> None:
    w = world
    made = w.req("admin", "POST", "/api/v1/principals", {"name": "newbie"})
    w.keys["newbie"] = made.json()["key"]
    path = "/api/v1/orgs/acme/members/newbie"
    assert w.req("mia", "PUT", path, {"role": "viewer"}).status_code == 403
    assert w.req("adam", "PUT", path, {"role": "owner"}).status_code == 403  # owners only
    assert w.req("adam", "PUT", path, {"role": "boss"}).status_code == 400
    assert w.req("adam", "PUT", path, {"role": "viewer"}).status_code == 200
    assert w.call("newbie").status_code == 200  # the cached roles were forgotten
    assert w.req("adam", "DELETE", path).status_code == 204
    assert w.call("newbie").status_code == 404
    assert w.req("adam", "DELETE", path).status_code == 404
    last = w.req("olga", "PUT", "/api/v1/orgs/acme/members/olga", {"role": "admin"})
    assert last.status_code == 409
    assert w.req("olga", "DELETE", "/api/v1/orgs/acme/members/olga").status_code == 409


def test_visibility_organization_and_public(world: World) -> None:
    w = world
    for level, otto in (("public", 200), ("organization", 404), ("private", 404)):
        changed = w.req("olga", "PATCH", "/api/v1/models/acme/hello", {"visibility": level})
        assert changed.status_code == 200, changed.text
        assert changed.json()["visibility"] == level
        assert w.call("otto").status_code == otto, level
        assert w.call("vic").status_code == 200
    bad = w.req("olga", "PATCH", "/api/v1/models/acme/hello", {"visibility": "secret"})
    assert bad.status_code == 400


def test_grants_give_and_take_call_and_manage_rights(world: World) -> None:
    w = world
    grant = "/api/v1/models/acme/hello/grants/otto"
    assert w.req("mia", "PUT", grant, {"right": "call"}).status_code == 403
    given = w.req("adam", "PUT", grant, {"right": "call"})
    assert given.status_code == 200, given.text
    assert given.json() == [
        {"model": "acme/hello", "principal": "otto", "kind": "user", "right": "call"}
    ]
    assert w.call("otto").status_code == 200
    assert w.req("otto", "PATCH", "/api/v1/models/acme/hello", {}).status_code == 403
    assert w.req("adam", "PUT", grant, {"right": "manage"}).status_code == 200
    assert w.req("otto", "PATCH", "/api/v1/models/acme/hello", {}).status_code == 200
    assert w.req("otto", "GET", "/api/v1/models/acme/hello/grants").status_code == 200
    assert w.req("adam", "DELETE", grant).status_code == 204
    assert w.call("otto").status_code == 404
    assert w.req("adam", "DELETE", grant).status_code == 404
    audit = w.http.get("/api/v1/audit", params={"limit": 1000}, headers=w.auth("admin")).json()
    actions = {(r["action"], r["resource"]) for r in audit}
    assert ("model.grant", "acme/hello") in actions
    assert ("model.revoke_grant", "acme/hello") in actions
    assert ("org.member_set", "org/acme/newbie") in actions or any(
        a == "org.member_set" for a, _ in actions
    )
    assert any(a == "org.create" for a, _ in actions)


def test_scoped_keys_deny_by_default_and_only_narrow(world: World) -> None:
    w = world
    caller = w.new_key("vic", scopes=["call:acme/*"])
    assert caller.status_code == 201, caller.text
    assert caller.json()["scopes"] == ["call:acme/*"]
    secret = caller.json()["key"]
    assert w.call("vic", key=secret).status_code == 200
    other = {"Authorization": f"Simple {secret}"}
    denied = w.http.get("/api/v1/models", headers=other)
    assert denied.status_code == 403 and "models:read" in denied.json()["error"]["message"]
    assert w.http.get("/api/v1/whoami", headers=other).status_code == 200
    # a key can hand out only what it holds, and never an unknown scope
    assert w.http.post("/api/v1/keys", json={"scopes": ["call"]}, headers=other).status_code == 403
    narrow = w.new_key("vic", scopes=["call:acme/hello", "models:read"])
    assert narrow.status_code == 201
    narrow_auth = {"Authorization": f"Simple {narrow.json()['key']}"}
    escalate = w.http.post("/api/v1/keys", json={"scopes": ["*"]}, headers=narrow_auth)
    assert escalate.status_code == 403  # and it lacks keys:manage anyway
    assert w.new_key("vic", scopes=["models:write"]).status_code == 400
    assert w.new_key("vic", scopes=["call:acme/*"], expires_in_days=0).status_code == 400
    # audit:read is privileged: '*' on a user's key does not give it
    assert w.req("vic", "GET", "/api/v1/audit").status_code == 403
    assert w.new_key("vic", scopes=["audit:read"]).status_code == 403


def test_service_accounts_keys_and_delegated_audit_reading(world: World) -> None:
    w = world
    assert (
        w.req("mia", "POST", "/api/v1/service-accounts", {"name": "x", "owner": "acme"}).status_code
        == 403
    )
    made = w.req("adam", "POST", "/api/v1/service-accounts", {"name": "acme-ci", "owner": "acme"})
    assert made.status_code == 201, made.text
    assert (made.json()["kind"], made.json()["owner"]) == ("service", "acme")
    assert w.new_key("mia", principal="acme-ci").status_code == 404
    key = w.new_key("adam", principal="acme-ci", scopes=["call:acme/*"], expires_in_days=30)
    assert key.status_code == 201, key.text
    assert key.json()["principal"] == "acme-ci" and key.json()["expires_at"] is not None
    secret = key.json()["key"]
    assert w.call("x", key=secret).status_code == 404  # no rights yet
    assert (
        w.req("adam", "PUT", "/api/v1/orgs/acme/members/acme-ci", {"role": "viewer"}).status_code
        == 200
    )
    assert w.call("x", key=secret).status_code == 200
    listed = w.http.get("/api/v1/keys", params={"principal": "acme-ci"}, headers=w.auth("adam"))
    assert [k["key_id"] for k in listed.json()] == [key.json()["key_id"]]
    assert listed.json()[0]["last_used_address"] == "testclient"
    assert (
        w.http.get(
            "/api/v1/keys", params={"principal": "acme-ci"}, headers=w.auth("mia")
        ).status_code
        == 404
    )
    assert w.req("adam", "DELETE", f"/api/v1/keys/{key.json()['key_id']}").status_code == 204
    assert w.call("x", key=secret).status_code == 401
    # An admin hands an auditor account an audit:read key; '*' on its own keys would not do.
    w.req("admin", "POST", "/api/v1/service-accounts", {"name": "siem"})
    auditor = w.new_key("admin", principal="siem", scopes=["audit:read"]).json()["key"]
    everything = w.new_key("admin", principal="siem", scopes=["*"]).json()["key"]
    reads = w.http.get("/api/v1/audit/verify", headers={"Authorization": f"Simple {auditor}"})
    assert reads.status_code == 200, reads.text
    refused = w.http.get("/api/v1/audit", headers={"Authorization": f"Simple {everything}"})
    assert refused.status_code == 403
    names = {p["name"] for p in w.req("adam", "GET", "/api/v1/principals").json()}
    assert {"adam", "acme", "acme-ci"} <= names and "siem" not in names


def test_expired_revoked_and_model_calls_only_keys_are_refused(world: World) -> None:
    w = world
    expiring = w.new_key("vic", scopes=["call:acme/*"], expires_in_days=1).json()
    assert w.call("vic", key=expiring["key"]).status_code == 200
    platform = w.http.app.state.platform  # type: ignore[attr-defined]
    with platform.sessions() as session:
        row = session.scalars(select(ApiKey).where(ApiKey.key_id == expiring["key_id"])).one()
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.commit()
    platform.authenticator.forget()
    expired = w.call("vic", key=expiring["key"])
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "unauthenticated"
    inside = w.new_key("vic", model_calls_only=True)
    assert inside.status_code == 201
    auth = {"Authorization": f"Simple {inside.json()['key']}"}
    refused = w.http.get("/api/v1/whoami", headers=auth)
    assert refused.status_code == 403 and "inside models" in refused.json()["error"]["message"]
    # a header a client could set is not the internal marker
    assert w.call("vic", key=inside.json()["key"]).status_code == 403
    listed = {k["key_id"]: k for k in w.req("vic", "GET", "/api/v1/keys").json()}
    assert listed[inside.json()["key_id"]]["model_calls_only"] is True


def test_only_users_create_orgs_and_only_admins_create_users(world: World) -> None:
    w = world
    assert w.req("otto", "POST", "/api/v1/principals", {"name": "eve"}).status_code == 403
    assert w.req("otto", "POST", "/api/v1/orgs", {"name": "otto-co"}).status_code == 201
    assert w.req("otto", "POST", "/api/v1/orgs", {"name": "otto-co"}).status_code == 409
    assert w.req("otto", "POST", "/api/v1/orgs", {"name": "Bad Name"}).status_code == 400
    assert (
        w.req("otto", "PUT", "/api/v1/orgs/otto-co/members/acme", {"role": "viewer"}).status_code
        == 400
    )


def test_the_cli_manages_users_orgs_grants_and_scoped_keys(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world
    monkeypatch.setattr(access_cli, "client_for", lambda *_args: w.gw.client)
    monkeypatch.setattr(catalog, "client_for", lambda *_args: w.gw.client)
    runner = CliRunner()

    def run(*args: str) -> str:
        done = runner.invoke(cli, list(args))
        assert done.exit_code == 0, done.output
        return done.output

    assert "secret (shown once)" in run("users", "create", "cleo")
    assert "cleo" in run("users", "list")
    run("orgs", "create", "cli-org")
    run("orgs", "add-member", "cli-org", "cleo", "--role", "viewer")
    members = json.loads(run("orgs", "members", "cli-org", "--json"))
    assert {"member": "cleo", "org": "cli-org", "kind": "user", "role": "viewer"} in members
    run("orgs", "remove-member", "cli-org", "cleo")
    assert "cli-org" in run("orgs", "list")
    run("models", "grant", "acme/hello", "cleo", "--right", "call")
    grants = json.loads(run("models", "grants", "acme/hello", "--json"))
    assert {"model": "acme/hello", "principal": "cleo", "kind": "user", "right": "call"} in grants
    run("models", "revoke", "acme/hello", "cleo")
    run("models", "visibility", "acme/hello", "organization")
    assert runner.invoke(cli, ["models", "visibility", "acme/hello", "secret"]).exit_code == 2
    run("models", "visibility", "acme/hello", "private")
    assert "acme/hello" in run("models", "--json")
    out = run(
        "keys",
        "create",
        "--scope",
        "call:acme/*",
        "--scope",
        "models:read",
        "--expires-in-days",
        "7",
    )
    assert "call:acme/* models:read" in out and "expires" in out
    run("users", "create", "cli-bot", "--service", "--owner", "cli-org")
    assert "cli-bot" in run("keys", "create", "--for", "cli-bot", "--scope", "call")
    assert runner.invoke(cli, ["users", "create", "x", "--owner", "cli-org"]).exit_code == 2


def test_an_organizations_default_rate_limit_applies_to_its_members(world: World) -> None:
    w = world
    w.keys["lim"] = w.req("admin", "POST", "/api/v1/principals", {"name": "lim"}).json()["key"]
    assert w.req("lim", "POST", "/api/v1/orgs", {"name": "lim-org"}).status_code == 201
    limited = w.req("admin", "PATCH", "/api/v1/principals/lim-org", {"rate_per_second": 0.01})
    assert limited.status_code == 200, limited.text
    assert w.new_key("lim").status_code == 201  # one call's worth of burst
    refused = w.new_key("lim")
    assert refused.status_code == 429, refused.text


def test_the_migration_runs_down_and_up(tmp_path: Path) -> None:
    engine = create_registry_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    upgrade(engine, "0003")
    upgrade(engine)
    with engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
        assert {"memberships", "grants"} <= tables
        keys = {c["name"] for c in inspect(connection).get_columns("api_keys")}
        assert {"last_used_address", "model_calls_only"} <= keys
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0003")
    with engine.connect() as connection:
        assert "grants" not in inspect(connection).get_table_names()
    upgrade(engine)
    engine.dispose()


def test_a_name_with_a_trailing_newline_cannot_pose_as_another(world: World) -> None:
    """``$`` in a Python pattern also matches before a final newline: ``acme\\n`` would be a
    second principal that lists and audits as ``acme``."""
    w = world
    for name in ("acme\n", "olga\n"):
        assert w.req("otto", "POST", "/api/v1/orgs", {"name": name}).status_code == 400
        made = w.req("otto", "POST", "/api/v1/service-accounts", {"name": name})
        assert made.status_code == 400, made.text
    names = [o["name"] for o in w.req("admin", "GET", "/api/v1/orgs").json()]
    assert not [n for n in names if n.endswith("\n")]
