"""Algorithmia's own client (PyPI ``algorithmia==2.0.5``, unchanged) against a real server:
``update``, secrets, and the user and organization calls, with their permission and
authentication failures."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import Algorithmia
import httpx
import pytest
from Algorithmia import errors

from algora.testing import RunningServer, write_model

from ...helpers import digest

SECRETIVE = """import hashlib
import os


def apply(input: str) -> dict:
    value = os.environ.get("MY_SECRET")
    matches = value is not None and hashlib.sha256(value.encode()).hexdigest() == input
    print("MY_SECRET matches:", matches)
    return {"present": value is not None, "matches": matches}
"""
HELLO = 'def apply(input: str) -> str:\n    return "Hello " + input\n'
VALUE = "s3cr3t-Ж-" + "x" * 20  # a value that would be easy to spot anywhere it leaked
NEW_VALUE = "rotated-" + "y" * 24


@dataclass
class Setup:
    server: RunningServer
    keys: dict[str, str]
    """Keys of admin; guest (a ``call`` grant on admin/secretive); stranger (nothing)."""
    responses: list[str]
    """Every body the tests read over raw HTTP, to prove no secret value is in any."""

    def client(self, who: str = "admin") -> Any:
        return Algorithmia.client(self.keys[who], self.server.url)

    def http(self, method: str, path: str, who: str | None = "admin", **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if who is not None:
            headers["Authorization"] = self.keys[who]
        response = httpx.request(method, self.server.url + path, headers=headers, **kwargs)
        self.responses.append(response.text)
        return response

    def native(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http(method, "/api/v1" + path, headers={}, **kwargs)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def key_for(self, name: str, scopes: list[str] | None = None) -> str:
        body: dict[str, Any] = {"name": "test", "principal": name}
        if scopes is not None:
            body["scopes"] = scopes
        return str(self.native("POST", "/keys", json=body)["key"])


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("algorithmia-manage")
    with RunningServer(root / "data") as server, server.client() as admin:
        admin.publish(write_model(root / "secretive", "secretive", SECRETIVE))
        admin.publish(write_model(root / "hello", "hello", HELLO))
        for version in ("1.0.0", "1.1.0", "2.0.0"):
            folder = write_model(root / f"pager-{version}", "pager", HELLO)
            admin.publish(folder, version=version)
        admin.deprecate("admin/pager", "1.1.0")
        broken = write_model(root / "pager-broken", "pager", "raise ImportError('broken')\n")
        with pytest.raises(Exception, match="broken"):
            admin.publish(broken, version="2.1.0")
        s = Setup(server, {"admin": server.key}, [])
        for user in ("guest", "stranger"):
            s.keys[user] = s.native("POST", "/principals", json={"name": user})["key"]
        s.native("PUT", "/models/admin/secretive/grants/guest", json={"right": "call"})
        yield s


# update -------------------------------------------------------------------------------------
def test_update_with_json_changes_summary_and_callability(setup: Setup) -> None:
    body = {
        "details": {"summary": "Says hello", "label": "Hello"},
        "settings": {"algorithm_callability": "public", "license": "apl"},
    }
    answer = setup.http("PUT", "/v1/algorithms/admin/hello", json=body)
    assert answer.status_code == 200, answer.text
    algorithm = answer.json()
    assert algorithm["details"]["summary"] == "Says hello"
    assert algorithm["settings"]["algorithm_callability"] == "public"
    assert algorithm["resource_type"] == "algorithm"
    assert algorithm["version_info"]["semantic_version"] == "1.0.0"
    assert setup.native("GET", "/models/admin/hello")["visibility"] == "public"
    # Now public: the stranger may call it, and read it with the client.
    assert setup.client("stranger").algo("admin/hello").pipe("x").result == "Hello x"
    private = {"settings": {"algorithm_callability": "private"}}
    assert setup.http("PUT", "/v1/algorithms/admin/hello", json=private).status_code == 200
    assert setup.client("stranger").algo("admin/hello").exists() is False

    bad = setup.http(
        "PUT", "/v1/algorithms/admin/hello", json={"settings": {"algorithm_callability": "x"}}
    )
    assert bad.status_code == 400 and "algorithm_callability" in bad.json()["error"]["message"]
    not_json = setup.http(
        "PUT",
        "/v1/algorithms/admin/hello",
        content=b"[1",
        headers={"Content-Type": "application/json"},
    )
    assert not_json.status_code == 400


def test_the_clients_form_encoded_update_is_refused_and_changes_nothing(setup: Setup) -> None:
    algo = setup.client().algo("admin/hello")
    # algorithmia 2.0.5 form-encodes the update: only the field names arrive.
    with pytest.raises(Exception, match="415"):
        algo.update(details={"summary": "lost in transit"}, settings={"license": "mit"})
    raw = setup.http(
        "PUT",
        "/v1/algorithms/admin/hello",
        content=b"details=summary&settings=license",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert raw.status_code == 415
    message = raw.json()["error"]["message"]
    assert "details, settings" in message and "application/json" in message
    assert setup.native("GET", "/models/admin/hello")["description"] != "lost in transit"
    # With nothing to change, the client's update answers the algorithm as it is.
    unchanged = algo.update()
    assert unchanged["name"] == "hello" and unchanged["resource_type"] == "algorithm"


def test_update_needs_the_manage_right(setup: Setup) -> None:
    body = {"details": {"summary": "mine now"}}
    hidden = setup.http("PUT", "/v1/algorithms/admin/secretive", who="stranger", json=body)
    assert hidden.status_code == 404
    assert "No such algorithm" in hidden.json()["error"]["message"]
    caller = setup.http("PUT", "/v1/algorithms/admin/secretive", who="guest", json=body)
    assert caller.status_code == 403
    nobody = setup.http("PUT", "/v1/algorithms/admin/secretive", who=None, json=body)
    assert nobody.status_code == 401
    assert setup.native("GET", "/models/admin/secretive")["description"] != "mine now"


# versions and info --------------------------------------------------------------------------
def semvers(page: dict[str, Any]) -> list[str]:
    return [v["version_info"]["semantic_version"] for v in page["results"]]


def test_versions_page_by_marker_and_next_link(setup: Setup) -> None:
    algo = setup.client().algo("admin/pager")
    everything = algo.versions()
    assert semvers(everything) == ["2.1.0", "2.0.0", "1.1.0", "1.0.0"]
    assert everything["marker"] is None and everything["next_link"] is None
    assert [v["build"]["status"] for v in everything["results"]] == [
        "failed",
        "succeeded",
        "succeeded",
        "succeeded",
    ]
    # Page by page with the client, following the marker.
    seen: list[str] = []
    page = algo.versions(limit=1)
    while True:
        seen += semvers(page)
        if page["marker"] is None:
            break
        assert page["marker"] == seen[-1]
        page = algo.versions(limit=1, marker=page["marker"])
    assert seen == semvers(everything)
    # next_link is the next page, filters included.
    first = algo.versions(limit=1, published=True)
    assert semvers(first) == ["2.0.0"]
    answer = httpx.get(first["next_link"], headers={"Authorization": setup.keys["admin"]})
    assert answer.status_code == 200
    assert "published=true" in first["next_link"]
    assert semvers(answer.json()) == ["1.1.0"]
    # The filters, both ways.
    assert semvers(algo.versions(published="false")) == ["2.1.0"]
    assert semvers(algo.versions(callable=True)) == ["2.0.0", "1.0.0"]
    assert semvers(algo.versions(callable="false")) == ["2.1.0", "1.1.0"]
    # A marker is a version, not a position: a new version does not shift the next page.
    assert semvers(algo.versions(limit=2, marker="2.0.0")) == ["1.1.0", "1.0.0"]
    assert len(algo.versions(limit=1000)["results"]) == 4  # capped at 100, not refused
    with pytest.raises(errors.AlgorithmException, match="marker"):
        algo.versions(marker="not-a-marker")
    with pytest.raises(errors.AlgorithmException, match="published"):
        algo.versions(published="maybe")


def test_info_names_a_version_by_hash_or_semver(setup: Setup) -> None:
    algo = setup.client().algo("admin/pager")
    latest = setup.client().getJsonHelper("/v1/algorithms/admin/pager")
    assert latest["version_info"]["semantic_version"] == "2.0.0"  # the latest callable
    git_hash = latest["version_info"]["git_hash"]
    by_hash = algo.info(git_hash)
    assert by_hash["version_info"]["semantic_version"] == "2.0.0"
    assert by_hash["build"]["finished_at"].endswith("Z")
    assert algo.info(git_hash[:12])["version_info"]["git_hash"] == git_hash
    assert algo.info("1.1.0")["version_info"]["deprecated"] is True
    assert semvers(algo.info()) == semvers(algo.versions())
    with pytest.raises(errors.AlgorithmException):
        algo.info("9.9.9")
    with pytest.raises(errors.AlgorithmException, match="No such algorithm"):
        setup.client("stranger").algo("admin/pager").info(git_hash)


# secrets ------------------------------------------------------------------------------------
def test_a_secret_reaches_the_models_workers_and_nothing_else(setup: Setup) -> None:
    algo = setup.client().algo("admin/secretive")
    before = algo.pipe(digest(VALUE)).result
    assert before == {"present": False, "matches": False}  # a running pool, without it

    created = algo.set_secret("My secret", "MY_SECRET", VALUE, "for the test")
    assert created["secret_key"] == "MY_SECRET"
    assert created["short_name"] == "My secret"
    assert created["owner_type"] == "algorithm"
    assert created["owner_id"] == algo.get_algorithm_id()
    assert VALUE not in json.dumps(created)

    listed = algo.get_secrets()
    [secret] = listed["results"]
    assert secret["secret_key"] == "MY_SECRET"
    assert secret["description"] == "for the test"
    assert {"created_at", "updated_at", "id"} <= set(secret)
    assert not {"secret_value", "value"} & set(secret)
    assert VALUE not in json.dumps(listed)

    # The model's pool was restarted: its new workers see the secret.
    answer = algo.set_options(stdout=True).pipe(digest(VALUE))
    assert answer.result == {"present": True, "matches": True}
    assert "MY_SECRET matches: True" in answer.metadata.stdout

    # Setting it again replaces the value; the next call sees the new one.
    replaced = algo.set_secret("My secret", "MY_SECRET", NEW_VALUE, "rotated")
    assert replaced["id"] == created["id"]
    assert [s["description"] for s in algo.get_secrets()["results"]] == ["rotated"]
    assert algo.pipe(digest(NEW_VALUE)).result == {"present": True, "matches": True}

    # The other models' workers do not get it.
    assert setup.client().algo("admin/hello").pipe("x").result == "Hello x"
    data_dir = setup.server.data_dir
    key_file = data_dir / "secrets.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    # No answer, no audit row, no log line and no file holds a value in clear.
    export = setup.http("GET", "/api/v1/audit/export")
    assert export.status_code == 200
    rows = [json.loads(line) for line in export.text.splitlines()]
    actions = {row["action"] for row in rows}
    assert {"model.secret_set", "model.secret_list"} <= actions
    set_rows = [row for row in rows if row["action"] == "model.secret_set"]
    assert {row["resource"] for row in set_rows} == {"admin/secretive"}
    for value in (VALUE, NEW_VALUE):
        for text in setup.responses:
            assert value not in text
        assert value not in setup.server.log()
        for path in Path(data_dir).rglob("*"):
            if path.is_file() and "envs" not in path.parts:
                assert value.encode() not in path.read_bytes(), path


def test_secret_names_and_bodies_are_checked(setup: Setup) -> None:
    algo = setup.client().algo("admin/secretive")
    algorithm_id = algo.get_algorithm_id()
    path = f"/v1/algorithms/{algorithm_id}/secrets"
    for name in ("1ABC", "MY-SECRET", "PATH", "ALGORA_KEY", "LD_PRELOAD", ""):
        body = {"short_name": "x", "secret_key": name, "secret_value": "v"}
        answer = setup.http("POST", path, json=body)
        assert answer.status_code == 400, (name, answer.text)
    for body in (
        {"short_name": "x", "secret_key": "OK_NAME"},  # no value
        {"short_name": "x", "secret_key": "OK_NAME", "secret_value": "v", "provider_id": "vault"},
        {"short_name": "x", "secret_key": "OK_NAME", "secret_value": "a\x00b"},
        {"short_name": "x", "secret_key": "OK_NAME", "secret_value": "v" * 40_000},
    ):
        answer = setup.http("POST", path, json=body)
        assert answer.status_code == 400, answer.text
        assert "v" * 100 not in answer.text
    not_json = setup.http("POST", path, content=b"not json")
    assert not_json.status_code == 400
    unknown = setup.http("GET", "/v1/algorithms/999999/secrets")
    assert unknown.status_code == 404
    assert [p["id"] for p in setup.client().get_secret_providers()] == ["algora"]
    assert "OK_NAME" not in json.dumps(algo.get_secrets())


def test_only_the_models_managers_set_or_list_its_secrets(setup: Setup) -> None:
    algorithm_id = setup.client().algo("admin/secretive").get_algorithm_id()
    path = f"/v1/algorithms/{algorithm_id}/secrets"
    body = {"short_name": "x", "secret_key": "STOLEN", "secret_value": "v"}
    # A stranger cannot see the model at all: the client's lookup of its id fails.
    with pytest.raises(errors.AlgorithmException, match="No such algorithm"):
        setup.client("stranger").algo("admin/secretive").set_secret("x", "STOLEN", "v")
    assert setup.http("POST", path, who="stranger", json=body).status_code == 404
    assert setup.http("GET", path, who="stranger").status_code == 404
    # A caller may call the model, not manage it.
    guest = setup.client("guest").algo("admin/secretive")
    with pytest.raises(Exception, match="403"):
        guest.set_secret("x", "STOLEN", "v")
    with pytest.raises(errors.AlgorithmException, match="may not manage"):
        guest.get_secrets()
    # Without a key, with a bad key, and with a key lacking models:manage.
    assert setup.http("GET", path, who=None).status_code == 401
    assert setup.http("POST", path, who=None, json=body).status_code == 401
    bad = httpx.get(setup.server.url + path, headers={"Authorization": "simNOTAREALKEY0000"})
    assert bad.status_code == 401
    setup.keys["reader"] = setup.key_for("admin", ["models:read", "call"])
    assert setup.http("POST", path, who="reader", json=body).status_code == 403
    assert setup.http("GET", path, who="reader").status_code == 403
    assert "STOLEN" not in json.dumps(setup.client().algo("admin/secretive").get_secrets())


# users and organizations --------------------------------------------------------------------
def test_admins_create_users(setup: Setup) -> None:
    admin = setup.client()
    user = admin.create_user(
        {"username": "newbie", "email": "newbie@example.com", "fullname": "New Bie"}
    )
    assert user["username"] == "newbie"
    assert user["email"] == "newbie@example.com"
    assert user["fullname"] == "New Bie"
    assert user["resource_type"] == "user"
    assert user["self_link"].endswith("/v1/users/newbie")
    principals = {p["name"]: p for p in setup.native("GET", "/principals")}
    assert principals["newbie"]["kind"] == "user" and not principals["newbie"]["is_admin"]
    with pytest.raises(Exception, match="409"):
        admin.create_user({"username": "newbie", "email": "again@example.com"})
    with pytest.raises(Exception, match="400"):
        admin.create_user({"username": "New_Bie", "email": "x@example.com"})
    with pytest.raises(Exception, match="403"):
        setup.client("guest").create_user({"username": "sneaky", "email": "s@example.com"})
    nobody = setup.http("POST", "/v1/users", who=None, json={"username": "anon"})
    assert nobody.status_code == 401
    names = {p["name"] for p in setup.native("GET", "/principals")}
    assert not {"sneaky", "anon", "New_Bie"} & names


def test_organizations_are_created_read_edited_and_joined(setup: Setup) -> None:
    guest = setup.client("guest")
    org = guest.create_org(
        {
            "org_name": "labs",
            "org_label": "The Labs",
            "org_contact_name": "Guest",
            "org_email": "labs@example.com",
            "type_id": "basic",
        }
    )
    assert org["org_name"] == "labs" and org["resource_type"] == "organization"
    assert org["type_id"] == "basic" and org["org_label"] == "The Labs"
    members = setup.native("GET", "/orgs/labs/members")
    assert [(m["member"], m["role"]) for m in members] == [("guest", "owner")]

    read = guest.get_org("labs")
    assert read["org_email"] == "labs@example.com"
    assert read["org_contact_name"] == "Guest"
    edited = guest.edit_org(
        "labs", {"org_label": "Labs", "org_url": "https://labs.example.com", "type_id": "pro"}
    )
    assert edited.status_code == 204
    read = guest.get_org("labs")
    assert (read["org_label"], read["org_url"], read["type_id"]) == (
        "Labs",
        "https://labs.example.com",
        "pro",
    )

    invited = guest.invite_to_org("labs", "stranger")
    assert invited.status_code == 204
    roles = {m["member"]: m["role"] for m in setup.native("GET", "/orgs/labs/members")}
    assert roles == {"guest": "owner", "stranger": "member"}
    assert guest.invite_to_org("labs", "guest").status_code == 204  # the owner stays owner
    roles = {m["member"]: m["role"] for m in setup.native("GET", "/orgs/labs/members")}
    assert roles["guest"] == "owner"
    assert setup.client("stranger").get_org("labs")["org_name"] == "labs"  # now a member

    actions = [
        row["action"]
        for row in setup.native("GET", "/audit", params={"limit": 500})
        if row["resource"] and row["resource"].startswith("org/labs")
    ]
    assert {"org.create", "org.update", "org.member_set"} <= set(actions)


def test_organization_permissions(setup: Setup) -> None:
    guest = setup.client("guest")
    guest.create_org({"org_name": "private-club", "org_email": "c@example.com", "type_id": "pro"})
    outsider = setup.client("stranger")
    # An outsider does not see it, cannot edit it or invite to it.
    hidden = outsider.get_org("private-club")
    assert "error" in hidden and "no organization" in hidden["error"]["message"]
    with pytest.raises(Exception, match="404"):
        outsider.edit_org("private-club", {"org_label": "ours", "type_id": "basic"})
    with pytest.raises(Exception, match="404"):
        outsider.invite_to_org("private-club", "stranger")
    # A member may read it, not edit it or invite.
    guest.invite_to_org("private-club", "stranger")
    member = setup.client("stranger")
    assert member.get_org("private-club")["org_name"] == "private-club"
    with pytest.raises(Exception, match="403"):
        member.edit_org("private-club", {"org_label": "ours", "type_id": "basic"})
    with pytest.raises(Exception, match="403"):
        member.invite_to_org("private-club", "newbie")
    assert guest.get_org("private-club")["org_label"] != "ours"
    # Bad input: an unknown type (the client sends it as ""), a renaming, bad names.
    with pytest.raises(Exception, match="400"):
        guest.create_org({"org_name": "typeless", "type_id": "enterprise"})
    with pytest.raises(Exception, match="400"):
        guest.edit_org("private-club", {"org_name": "renamed", "type_id": "basic"})
    with pytest.raises(Exception, match="400"):
        guest.create_org({"org_name": "Upper_Case", "type_id": "basic"})
    with pytest.raises(Exception, match="409"):  # this test's own org: xdist splits the module
        guest.create_org({"org_name": "private-club", "type_id": "basic"})
    with pytest.raises(Exception, match="404"):
        guest.invite_to_org("private-club", "nobody-by-that-name")
    # Without a key, and with a key lacking principals:manage.
    assert setup.http("GET", "/v1/organizations/labs", who=None).status_code == 401
    assert setup.http("PUT", "/v1/organizations/labs/members/x", who=None).status_code == 401
    setup.keys["caller"] = setup.key_for("guest", ["call"])
    refused = setup.http("PUT", "/v1/organizations/labs", who="caller", json={})
    assert refused.status_code == 403
    types = setup.client().get_org_types()
    assert [t["name"] for t in types] == ["basic", "legacy", "pro"]
