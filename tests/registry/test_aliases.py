"""Aliases and promotions with approval: through HTTP, the SDK, the CLI and Algorithmia's client.

The world: organization acme (owner olga, admin adam, member mia, viewer vic), outsider otto;
acme/hello 1.0.0 ("Hello "), 1.1.0 ("Hi ") and 1.2.0 (failed); acme/other 1.0.0 and 2.0.0.
``production`` is protected everywhere, ``gold`` only for acme's models.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import Algorithmia
import pytest
from alembic import command
from sqlalchemy import inspect, update

from algora.db.engine import create_registry_engine
from algora.db.migrate import _config, upgrade
from algora.db.tables import PromotionRequest, Version, utcnow
from algora.errors import (
    AliasNotFound,
    AliasProtected,
    BuildFailed,
    InvalidAlias,
    PermissionDenied,
    PromotionClosed,
    VersionNotReady,
)
from algora.registry.aliases import AliasPolicy
from algora.registry.routing import Routing
from algora.settings import Settings
from algora.testing import RunningServer, write_model

from ..conftest import HELLO_MODEL, People, database_url, in_process
from ..helpers import algora, new_users

HI_MODEL = 'def apply(input: str) -> str:\n    return "Hi " + input\n'
BROKEN_MODEL = 'raise RuntimeError("this version cannot load")\n'
PEOPLE = {"olga": "owner", "adam": "admin", "mia": "member", "vic": "viewer", "otto": None}


class World(People):
    def call(self, who: str, ref: str) -> Any:
        headers = {**self.auth(who), "Content-Type": "text/plain"}
        return self.http.post(f"/v1/algo/{ref}", content=b"x", headers=headers)

    def key_with(self, who: str, *scopes: str) -> str:
        made = self.req(who, "POST", "/api/v1/keys", {"name": "scoped", "scopes": list(scopes)})
        assert made.status_code == 201, made.text
        return str(made.json()["key"])

    def audit(self, action: str) -> list[dict[str, Any]]:
        rows = self.req("admin", "GET", "/api/v1/audit", model="acme/hello", limit=500).json()
        return [r for r in rows if r["action"] == action]

    def expire(self, promotion_id: int) -> None:
        """Fault injection: the request's time ran out (no waiting in tests)."""
        platform = self.http.app.state.platform  # type: ignore[attr-defined]
        with platform.sessions() as session:
            session.execute(
                update(PromotionRequest)
                .where(PromotionRequest.id == promotion_id)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
            session.commit()


ALIASES = "/api/v1/models/acme/hello/aliases"
PROMOTIONS = "/api/v1/models/acme/hello/promotions"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("algora-aliases")
    with database_url(request.param) as url:
        settings = {
            "default_call_timeout": 20,
            "database_url": url,
            "protected_aliases": ["production"],
            "protected_aliases_by_owner": {"acme": ["gold"]},
            "promotion_expiry_seconds": 3600,
        }
        with in_process(data_dir, **settings) as gateway:
            w = World(gateway)
            w.keys.update(new_users(gateway.client, *PEOPLE))
            assert w.req("olga", "POST", "/api/v1/orgs", {"name": "acme"}).status_code == 201
            for person, role in PEOPLE.items():
                if role not in (None, "owner"):
                    path = f"/api/v1/orgs/acme/members/{person}"
                    assert w.req("olga", "PUT", path, {"role": role}).status_code == 200
            root = tmp_path_factory.mktemp("alias-models")
            olga = w.sdk("olga")
            olga.publish(write_model(root / "h1", "hello", HELLO_MODEL), owner="acme")
            olga.publish(write_model(root / "h2", "hello", HI_MODEL), owner="acme")
            with pytest.raises(BuildFailed):
                olga.publish(write_model(root / "h3", "hello", BROKEN_MODEL), owner="acme")
            olga.publish(write_model(root / "o1", "other", HELLO_MODEL), owner="acme")
            olga.publish(write_model(root / "o2", "other", HI_MODEL), owner="acme", bump="major")
            statuses = {v["version"]: v["status"] for v in olga.versions("acme/hello")}
            assert statuses == {"1.0.0": "ready", "1.1.0": "ready", "1.2.0": "failed"}
            yield w


# ------------------------------------------------------------------------------- aliases
def test_set_move_and_delete_an_alias_and_call_through_it(world: World) -> None:
    w = world
    made = w.req("olga", "PUT", f"{ALIASES}/staging", {"version": "1.0.0"})
    assert made.status_code == 200, made.text
    assert made.json()["moved"] is True
    assert made.json()["alias"]["version"] == "1.0.0"
    called = w.call("vic", "acme/hello/staging")
    assert called.status_code == 200, called.text
    assert called.json()["result"] == "Hello x"
    assert called.headers["x-algora-version"] == "1.0.0"

    moved = w.req("adam", "PUT", f"{ALIASES}/staging", {"version": "1.1.0", "note": "ship"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["alias"]["updated_by"] == "adam"
    called = w.call("vic", "acme/hello/staging")  # the resolution cache was forgotten
    assert (called.json()["result"], called.headers["x-algora-version"]) == ("Hi x", "1.1.0")
    assert w.call("vic", "acme/hello/1.0.0").json()["result"] == "Hello x"  # versions stay

    listed = w.req("vic", "GET", ALIASES).json()
    assert [(a["alias"], a["version"], a["protected"]) for a in listed] == [
        ("staging", "1.1.0", False)
    ]
    assert w.req("vic", "GET", f"{ALIASES}/staging").json()["version"] == "1.1.0"

    assert w.req("olga", "DELETE", f"{ALIASES}/staging").status_code == 204
    gone = w.call("vic", "acme/hello/staging")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "alias_not_found"
    missing = w.req("olga", "DELETE", f"{ALIASES}/staging")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "alias_not_found"

    changes = [(r["principal"], r["version"], r["status"]) for r in w.audit("alias.move")]
    assert ("adam", "staging:1.0.0->1.1.0", 200) in changes
    assert ("olga", "staging:->1.0.0", 200) in changes
    deleted = [(r["principal"], r["version"], r["status"]) for r in w.audit("alias.delete")]
    assert ("olga", "staging:1.1.0->", 204) in deleted


def test_an_alias_points_only_at_a_ready_version_of_its_own_model(world: World) -> None:
    w = world
    failed = w.req("olga", "PUT", f"{ALIASES}/broken", {"version": "1.2.0"})
    assert failed.status_code == 409 and failed.json()["error"]["code"] == "version_not_ready"
    # 2.0.0 exists, but only as acme/other's version: hello has none.
    other = w.req("olga", "PUT", f"{ALIASES}/broken", {"version": "2.0.0"})
    assert other.status_code == 404 and other.json()["error"]["code"] == "version_not_found"
    assert w.req("olga", "GET", f"{ALIASES}/broken").status_code == 404
    # Any spec names the target, resolved now: latest is the highest ready, non-failed one.
    latest = w.req("olga", "PUT", f"{ALIASES}/edge", {"version": "latest"})
    assert latest.json()["alias"]["version"] == "1.1.0"
    copied = w.req("olga", "PUT", f"{ALIASES}/edge-copy", {"version": "edge"})
    assert copied.json()["alias"]["version"] == "1.1.0"
    bad_spec = w.req("olga", "PUT", f"{ALIASES}/edge", {"version": "1.2.3.4"})
    assert bad_spec.status_code == 400
    for name in ("edge", "edge-copy"):
        assert w.req("olga", "DELETE", f"{ALIASES}/{name}").status_code == 204


@pytest.mark.parametrize(
    "name", ["latest", "latestprivate", "1.x", "1", "1.0.0", "v1", "deadbeefcafe", "Prod", "p" * 33]
)
def test_an_alias_never_shadows_a_version_spec(world: World, name: str) -> None:
    refused = world.req("olga", "PUT", f"{ALIASES}/{name}", {"version": "1.0.0"})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "invalid_alias"


def test_moving_aliases_needs_the_scope_and_manage_rights(world: World) -> None:
    w = world
    body = {"version": "1.0.0"}
    for who, status in (("mia", 403), ("vic", 403), ("otto", 404)):
        refused = w.req(who, "PUT", f"{ALIASES}/qa", body)
        assert refused.status_code == status, (who, refused.text)
    assert w.req("otto", "GET", ALIASES).status_code == 404  # a private model stays hidden
    assert w.req("vic", "GET", ALIASES).status_code == 200
    # olga may manage acme/hello, but this key of hers may not move aliases.
    w.keys["olga-no-aliases"] = w.key_with("olga", "models:read", "models:manage")
    refused = w.req("olga-no-aliases", "PUT", f"{ALIASES}/qa", body)
    assert refused.status_code == 403 and "aliases:write" in refused.json()["error"]["message"]
    w.keys["olga-aliases"] = w.key_with("olga", "aliases:write")
    assert w.req("olga-aliases", "PUT", f"{ALIASES}/qa", body).status_code == 200
    assert w.req("olga-aliases", "DELETE", f"{ALIASES}/qa").status_code == 204
    denied = [r for r in w.audit("alias.move") if r["decision"] == "deny"]
    assert {r["principal"] for r in denied} >= {"mia", "vic", "olga"}


def test_unknown_models_aliases_and_bodies_are_clean_4xx(world: World) -> None:
    w = world
    assert w.req("olga", "GET", "/api/v1/models/acme/nothing/aliases").status_code == 404
    assert w.req("olga", "PUT", f"{ALIASES}/qa", {"version": ""}).status_code == 400
    assert w.req("olga", "PUT", f"{ALIASES}/qa", {"nope": 1}).status_code == 400
    assert w.req("olga", "GET", f"{PROMOTIONS}/0").status_code == 400
    assert w.req("olga", "GET", f"{PROMOTIONS}/{2**40}").status_code == 400
    assert w.req("olga", "GET", f"{PROMOTIONS}/424242").status_code == 404
    assert w.req("olga", "GET", PROMOTIONS, status="nonsense").status_code == 400


# ---------------------------------------------------------------------------- promotions
def test_a_protected_alias_moves_only_when_a_second_principal_approves(world: World) -> None:
    w = world
    asked = w.req("olga", "PUT", f"{ALIASES}/production", {"version": "1.0.0", "note": "go"})
    assert asked.status_code == 202, asked.text
    promotion = asked.json()["promotion"]
    assert asked.json()["moved"] is False
    assert (promotion["status"], promotion["requested_by"]) == ("pending", "olga")
    assert (promotion["version"], promotion["from_version"]) == ("1.0.0", None)
    assert w.req("olga", "GET", f"{ALIASES}/production").status_code == 404  # not moved yet
    assert w.call("vic", "acme/hello/production").status_code == 404
    number = promotion["id"]
    approve = f"{PROMOTIONS}/{number}/approve"

    own = w.req("olga", "POST", approve, {})
    assert own.status_code == 403 and "another principal" in own.json()["error"]["message"]
    for who, status in (("mia", 403), ("vic", 403), ("otto", 404)):
        assert w.req(who, "POST", approve, {}).status_code == status, who
    # adam manages acme/hello, but a key without the approve right is refused.
    w.keys["adam-write"] = w.key_with("adam", "aliases:write", "models:read")
    assert w.req("adam-write", "POST", approve, {}).status_code == 403
    pending = w.req("adam", "GET", PROMOTIONS).json()
    assert [p["id"] for p in pending] == [number]
    assert number in [p["id"] for p in w.req("adam", "GET", "/api/v1/promotions").json()]
    assert w.req("otto", "GET", "/api/v1/promotions").json() == []
    assert w.req("vic", "GET", PROMOTIONS).status_code == 403  # readers do not see requests

    approved = w.req("adam", "POST", approve, {"note": "looks good"})
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["decided_by"]) == ("approved", "adam")
    assert approved.json()["decision_note"] == "looks good"
    alias = w.req("vic", "GET", f"{ALIASES}/production").json()
    assert (alias["version"], alias["protected"], alias["updated_by"]) == ("1.0.0", True, "adam")
    called = w.call("vic", "acme/hello/production")
    assert (called.json()["result"], called.headers["x-algora-version"]) == ("Hello x", "1.0.0")
    again = w.req("olga", "POST", approve, {})
    assert again.status_code == 409 and again.json()["error"]["code"] == "promotion_closed"

    # The request, the approval and the move are each audited; approval and move share an id.
    requested = [r for r in w.audit("promotion.request") if r["status"] == 202]
    assert requested[0]["principal"] == "olga"
    assert requested[0]["version"] == "production:->1.0.0"
    approval = next(r for r in w.audit("promotion.approve") if r["status"] == 200)
    move = next(r for r in w.audit("alias.move") if r["version"] == "production:->1.0.0")
    assert (approval["principal"], move["principal"]) == ("adam", "adam")
    assert approval["request_id"] == move["request_id"]
    assert w.audit("promotion.approve")[-1]["decision"] == "deny"  # olga's own, the first try

    # The next move of production needs approval again; the request records where it was.
    asked = w.req("adam", "PUT", f"{ALIASES}/production", {"version": "1.1.0"})
    assert asked.status_code == 202 and asked.json()["promotion"]["from_version"] == "1.0.0"
    done = w.req("olga", "POST", f"{PROMOTIONS}/{asked.json()['promotion']['id']}/approve")
    assert done.status_code == 200, done.text
    assert w.call("vic", "acme/hello/production").headers["x-algora-version"] == "1.1.0"
    unchanged = w.req("adam", "PUT", f"{ALIASES}/production", {"version": "1.1.0"})
    assert unchanged.status_code == 200 and unchanged.json()["moved"] is True  # already there
    assert unchanged.json()["alias"]["updated_by"] == "olga"  # who approved the last move


def test_rejection_does_not_move_and_closes_the_request(world: World) -> None:
    w = world
    asked = w.req("olga", "POST", PROMOTIONS, {"alias": "gold", "version": "1.0.0"})
    assert asked.status_code == 201, asked.text
    number = asked.json()["id"]
    assert w.req("olga", "POST", f"{PROMOTIONS}/{number}/reject", {}).status_code == 403
    rejected = w.req("adam", "POST", f"{PROMOTIONS}/{number}/reject", {"note": "not yet"})
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["status"], rejected.json()["decision_note"]) == ("rejected", "not yet")
    assert w.req("olga", "GET", f"{ALIASES}/gold").status_code == 404
    late = w.req("admin", "POST", f"{PROMOTIONS}/{number}/approve", {})
    assert late.status_code == 409 and late.json()["error"]["details"]["status"] == "rejected"
    listed = w.req("adam", "GET", PROMOTIONS, status="rejected").json()
    assert number in [p["id"] for p in listed]
    assert [r["principal"] for r in w.audit("promotion.reject") if r["status"] == 200] == ["adam"]


def test_requests_expire_and_a_newer_request_supersedes_a_pending_one(world: World) -> None:
    w = world
    first = w.req("olga", "PUT", f"{ALIASES}/gold", {"version": "1.0.0"}).json()["promotion"]
    requested_at = first["requested_at"]
    assert first["expires_at"] > requested_at  # an hour later, as configured
    w.expire(first["id"])
    assert first["id"] not in [p["id"] for p in w.req("adam", "GET", PROMOTIONS).json()]
    expired = w.req("adam", "GET", PROMOTIONS, status="expired").json()
    assert first["id"] in [p["id"] for p in expired]
    late = w.req("adam", "POST", f"{PROMOTIONS}/{first['id']}/approve", {})
    assert late.status_code == 409 and late.json()["error"]["details"]["status"] == "expired"
    assert w.req("olga", "GET", f"{ALIASES}/gold").status_code == 404

    second = w.req("olga", "PUT", f"{ALIASES}/gold", {"version": "1.0.0"}).json()["promotion"]
    third = w.req("mia", "PUT", f"{ALIASES}/gold", {"version": "1.1.0"})
    assert third.status_code == 403  # a member may publish, not move aliases
    third = w.req("adam", "PUT", f"{ALIASES}/gold", {"version": "1.1.0"}).json()["promotion"]
    old = w.req("admin", "POST", f"{PROMOTIONS}/{second['id']}/approve", {})
    assert old.status_code == 409 and old.json()["error"]["details"]["status"] == "superseded"
    assert w.req("olga", "POST", f"{PROMOTIONS}/{third['id']}/approve", {}).status_code == 200
    assert w.req("vic", "GET", f"{ALIASES}/gold").json()["version"] == "1.1.0"


def test_a_protected_alias_cannot_be_deleted(world: World) -> None:
    w = world
    for alias in ("production", "gold"):
        refused = w.req("admin", "DELETE", f"{ALIASES}/{alias}")
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "alias_protected"


def test_a_service_account_cannot_approve_its_owners_request(world: World) -> None:
    w = world
    made = w.req("adam", "POST", "/api/v1/service-accounts", {"name": "adam-bot"})
    assert made.status_code == 201, made.text
    granted = w.req("olga", "PUT", "/api/v1/models/acme/hello/grants/adam-bot", {"right": "manage"})
    assert granted.status_code == 200, granted.text
    bot = w.req("adam", "POST", "/api/v1/keys", {"principal": "adam-bot", "name": "bot"})
    w.keys["adam-bot"] = bot.json()["key"]
    asked = w.req("adam", "POST", PROMOTIONS, {"alias": "production", "version": "1.0.0"})
    number = asked.json()["id"]
    refused = w.req("adam-bot", "POST", f"{PROMOTIONS}/{number}/approve", {})
    assert refused.status_code == 403, refused.text
    assert w.req("adam-bot", "POST", f"{PROMOTIONS}/{number}/reject", {}).status_code == 403
    assert w.req("olga", "POST", f"{PROMOTIONS}/{number}/reject", {}).status_code == 200


def test_the_sdk_manages_aliases_and_promotions(world: World) -> None:
    w = world
    olga, adam = w.sdk("olga"), w.sdk("adam")
    moved = olga.set_alias("acme/hello", "canary", "1.1.0", note="try it")
    assert moved["moved"] and moved["alias"]["version"] == "1.1.0"
    assert olga.model("acme/hello/canary").call_full("sdk").version == "1.1.0"
    assert "canary" in [a["alias"] for a in adam.aliases("acme/hello")]
    olga.delete_alias("acme/hello", "canary")
    with pytest.raises(AliasNotFound):
        olga.model("acme/hello/canary").call("sdk")
    with pytest.raises(InvalidAlias):
        olga.set_alias("acme/hello", "1.x", "1.0.0")
    with pytest.raises(VersionNotReady):
        olga.set_alias("acme/hello", "canary", "1.2.0")
    with pytest.raises(AliasProtected):
        olga.delete_alias("acme/hello", "production")

    pending = olga.set_alias("acme/hello", "production", "1.0.0")
    assert not pending["moved"] and pending["promotion"]["status"] == "pending"
    asked = olga.request_promotion("acme/hello", "production", "1.0.0", note="better")
    assert asked["note"] == "better"
    assert [p["id"] for p in adam.promotions("acme/hello")] == [asked["id"]]
    assert asked["id"] in [p["id"] for p in adam.promotions()]
    statuses = {p["id"]: p["status"] for p in adam.promotions("acme/hello", status="all")}
    assert statuses[pending["promotion"]["id"]] == "superseded"
    with pytest.raises(PermissionDenied):
        olga.approve_promotion("acme/hello", asked["id"])
    assert adam.reject_promotion("acme/hello", asked["id"])["status"] == "rejected"
    with pytest.raises(PromotionClosed):
        adam.approve_promotion("acme/hello", asked["id"])
    again = olga.request_promotion("acme/hello", "production", "1.0.0")
    assert adam.approve_promotion("acme/hello", again["id"])["status"] == "approved"
    assert olga.model("acme/hello/production").call_full("x").version == "1.0.0"


def test_the_alias_policy_protects_global_and_per_owner_aliases() -> None:
    policy = AliasPolicy.of(
        Settings(
            protected_aliases=["production"],
            protected_aliases_by_owner={"acme": ["gold"]},
            promotion_expiry_seconds=90,
        )
    )
    assert policy.protects("anyone", "production") and policy.protects("acme", "gold")
    assert not policy.protects("other", "gold") and not policy.protects("acme", "staging")
    assert policy.expiry == timedelta(seconds=90)
    assert not AliasPolicy.of(Settings()).protects("acme", "production")  # default: none


def test_the_migration_runs_down_and_up(tmp_path: Path) -> None:
    engine = create_registry_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    upgrade(engine, "0008")
    upgrade(engine)
    with engine.connect() as connection:
        assert {"aliases", "promotion_requests"} <= set(inspect(connection).get_table_names())
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0008")
    with engine.connect() as connection:
        assert "aliases" not in inspect(connection).get_table_names()
    upgrade(engine)
    engine.dispose()


# ------------------------------------------------------- a real server: CLI and Algorithmia


def test_the_cli_and_algorithmias_client_through_a_real_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("alias-cli")
    env = {"ALGORA_PROTECTED_ALIASES": '["production"]'}
    with RunningServer(root / "data", env=env) as server, server.client() as admin:
        admin.publish(write_model(root / "h1", "hello", HELLO_MODEL))
        admin.publish(write_model(root / "h2", "hello", HI_MODEL))
        made = admin.request("POST", "/api/v1/principals", json={"name": "rita"})
        rita = made.json()["key"]
        grant = {"right": "manage"}
        granted = admin.request("PUT", "/api/v1/models/admin/hello/grants/rita", json=grant)
        assert granted.status_code == 200, granted.text
        url = server.url

        def ok(*args: str, key: str = server.key) -> str:
            done = algora(*args, key=key, url=url)
            assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
            return done.stdout

        assert "staging" in ok("alias", "set", "admin/hello", "staging", "1.0.0")
        assert ok("call", "admin/hello/staging", "cli").strip() == "Hello cli"
        listed = json.loads(ok("alias", "list", "admin/hello", "--json"))
        assert [(a["alias"], a["version"]) for a in listed] == [("staging", "1.0.0")]
        assert "staging" in ok("alias", "list", "admin/hello")

        # Algorithmia's own client names the alias where it names a version.
        client = Algorithmia.client(server.key, url)
        assert client.algo("admin/hello/staging").pipe("algo").result == "Hello algo"
        ok("alias", "set", "admin/hello", "staging", "1.1.0")
        assert client.algo("admin/hello/staging").pipe("algo").result == "Hi algo"
        ok("alias", "rm", "admin/hello", "staging")
        assert ok("alias", "list", "admin/hello", "--json").strip() == "[]"

        pending = ok("alias", "set", "admin/hello", "production", "1.1.0")
        assert "awaits approval" in pending
        asked = json.loads(
            ok("promote", "request", "admin/hello", "production", "1.0.0", "--json", "--note", "x")
        )
        rows = json.loads(ok("promote", "list", "--json"))
        assert [r["id"] for r in rows] == [asked["id"]]
        assert "production" in ok("promote", "list", "admin/hello", "--status", "all")
        own = algora("promote", "approve", "admin/hello", str(asked["id"]), key=server.key, url=url)
        assert own.returncode == 1 and "permission_denied" in own.stderr
        assert "Traceback" not in own.stderr
        assert "approved" in ok("promote", "approve", "admin/hello", str(asked["id"]), key=rita)
        assert ok("call", "admin/hello/production", "cli").strip() == "Hello cli"
        assert client.algo("admin/hello/production").pipe("algo").result == "Hello algo"

        again = json.loads(
            ok("promote", "request", "admin/hello", "production", "1.1.0", "--json", key=rita)
        )
        assert "rejected" in ok("promote", "reject", "admin/hello", str(again["id"]))
        assert ok("call", "admin/hello/production", "cli").strip() == "Hello cli"
        refused = algora("alias", "rm", "admin/hello", "production", key=server.key, url=url)
        assert refused.returncode == 1 and "alias_protected" in refused.stderr
        bad = algora("promote", "list", "--status", "nope", key=server.key, url=url)
        assert bad.returncode == 2


def test_a_sticky_routing_places_each_key_by_weight() -> None:
    """Keys land on one version each, in proportion to the weights, and a key's place is fixed:
    growing the last version's share only moves keys onto it."""
    one, two = Version(id=1, major=1, minor=0, patch=0), Version(id=2, major=1, minor=1, patch=0)
    keys = [f"key-{n}" for n in range(2000)]

    def placed(weights: tuple[int, int]) -> dict[str, int]:
        routing = Routing((one, two), weights, sticky_to="7/canary")
        return {key: routing.pick(key).id for key in keys}

    ten, fifty = placed((90, 10)), placed((50, 50))
    assert placed((90, 10)) == ten  # the same key, the same version
    assert 100 < sum(v == 2 for v in ten.values()) < 300  # about 10 % of 2,000
    assert all(fifty[key] == 2 for key, v in ten.items() if v == 2)
    random_routing = Routing((one, two), (50, 50))
    assert {random_routing.pick("key-1").id for _ in range(200)} == {1, 2}
