"""The administration pages over HTTP (in-process): users, organizations and members, a model's
grants and visibility, and asking for a promotion; each refused to whom the API refuses it,
refused without its CSRF token, and audited under the API's action."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from algora.testing import write_model

from ..conftest import InProcess, in_process
from ..helpers import new_users
from .conftest import HELLO, csrf_in, publish_models, sign_in


class World:
    def __init__(self, gateway: InProcess, keys: dict[str, str]) -> None:
        self.gateway = gateway
        self.keys = {"admin": gateway.key, **keys}

    def signed_in(self, who: str) -> TestClient:
        http = TestClient(self.gateway.http.app, raise_server_exceptions=False)
        http.portal = self.gateway.http.portal
        sign_in(http, self.keys[who])
        return http

    def audit(self, action: str | None = None, **params: str) -> list[dict[str, Any]]:
        """The audit rows ``params`` select (newest first), of ``action`` if given."""
        found = self.gateway.client.request("GET", "/api/v1/audit", params=params)
        assert found.status_code == 200, found.text
        return [row for row in found.json() if action in (None, row["action"])]

    def api(self, who: str, method: str, path: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Simple {self.keys[who]}"}
        return self.gateway.http.request(method, path, headers=headers, **kw)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("admin-ui")
    with in_process(root / "data", protected_aliases=["production"]) as gateway:
        keys = new_users(gateway.client, "ann", "bob", "cyd")
        client = gateway.client.__class__
        ann = client("http://testserver", keys["ann"], http=gateway.http)
        publish_models(root, ann, client("http://testserver", keys["bob"], http=gateway.http))
        ann.publish(write_model(root / "ranker", "ranker", HELLO), owner="ann", version="1.1.0")
        yield World(gateway, keys)


def _post(http: TestClient, page: str, action: str, **fields: str) -> Any:
    """Send the form at ``action`` as a browser would, with the token of ``page``."""
    token = csrf_in(http.get(page).text)
    return http.post(action, data={"csrf": token, **fields}, follow_redirects=False)


# users ------------------------------------------------------------------------------------------
def test_an_admin_creates_a_user_whose_first_key_is_shown_once(world: World) -> None:
    admin = world.signed_in("admin")
    page = admin.get("/ui/admin/users")
    assert page.status_code == 200
    assert 'id="principal-ann"' in page.text and "Create a user" in page.text
    made = _post(admin, "/ui/admin/users", "/ui/admin/users", name="dee")
    assert made.status_code == 201, made.text
    secret = re.search(r'id="secret" readonly value="([^"]+)"', made.text)
    assert secret is not None
    assert secret.group(1) not in admin.get("/ui/admin/users").text
    world.keys["dee"] = secret.group(1)
    assert world.signed_in("dee").get("/ui/").status_code == 200  # the key works
    rows = world.audit(action="principal.create", principal="admin")
    assert [(e["resource"], e["status"]) for e in rows if "dee" in e["resource"]] == [
        ("principal/dee", 201)
    ]

    bad = _post(admin, "/ui/admin/users", "/ui/admin/users", name="Not A Name")
    assert bad.status_code == 400
    assert 'id="form-error"' in bad.text and "cannot be an Algora user name" in bad.text


def test_only_an_admin_creates_users_and_every_form_needs_its_token(world: World) -> None:
    ann = world.signed_in("ann")
    page = ann.get("/ui/admin/users")
    assert page.status_code == 200
    assert "Create a user" not in page.text  # not offered ...
    refused = _post(ann, "/ui/admin/users", "/ui/admin/users", name="eve")
    assert refused.status_code == 403 and "only an admin" in refused.text  # ... nor allowed
    admin = world.signed_in("admin")
    tokenless = admin.post("/ui/admin/users", data={"name": "eve"})
    assert tokenless.status_code == 403 and "CSRF" in tokenless.text
    names = [p["name"] for p in world.gateway.client.request("GET", "/api/v1/principals").json()]
    assert "eve" not in names
    denied = [e for e in world.audit(action="principal.create") if e["principal"] == "ann"]
    assert denied and denied[0]["status"] == 403


def test_a_key_without_principals_manage_sees_no_admin_pages(world: World) -> None:
    made = world.api(
        "ann", "POST", "/api/v1/keys", json={"name": "reader", "scopes": ["models:read"]}
    )
    assert made.status_code == 201, made.text
    world.keys["ann-reader"] = made.json()["key"]
    http = world.signed_in("ann-reader")
    assert "/ui/admin/users" not in http.get("/ui/").text  # not in the navigation
    for path in ("/ui/admin/users", "/ui/admin/orgs"):
        refused = http.get(path)
        assert refused.status_code == 403 and "principals:manage" in refused.text


# organizations ----------------------------------------------------------------------------------
def test_a_user_creates_an_org_and_manages_its_members(world: World) -> None:
    ann = world.signed_in("ann")
    made = _post(ann, "/ui/admin/orgs", "/ui/admin/orgs", name="lab")
    assert made.status_code == 303 and made.headers["location"] == "/ui/admin/orgs/lab"
    page = ann.get("/ui/admin/orgs/lab")
    assert 'id="member-ann"' in page.text
    org = "/ui/admin/orgs/lab"
    added = _post(ann, org, f"{org}/members", member="bob", role="viewer")
    assert added.status_code == 303
    members = world.api("ann", "GET", "/api/v1/orgs/lab/members").json()
    assert {m["member"]: m["role"] for m in members} == {"ann": "owner", "bob": "viewer"}
    assert _post(ann, org, f"{org}/members", member="bob", role="admin").status_code == 303
    members = world.api("ann", "GET", "/api/v1/orgs/lab/members").json()
    assert {m["member"]: m["role"] for m in members}["bob"] == "admin"

    unknown_role = _post(ann, org, f"{org}/members", member="cyd", role="emperor")
    assert unknown_role.status_code == 400 and "a role is one of" in unknown_role.text
    assert _post(ann, org, f"{org}/members/bob/remove").status_code == 303
    members = world.api("ann", "GET", "/api/v1/orgs/lab/members").json()
    assert [m["member"] for m in members] == ["ann"]
    actions = {(e["action"], e["resource"]) for e in world.audit(principal="ann")}
    assert {("org.create", "org/lab"), ("org.member_set", "org/lab/bob"),
            ("org.member_remove", "org/lab/bob")} <= actions  # fmt: skip


def test_members_and_strangers_are_refused_on_an_orgs_page(world: World) -> None:
    ann = world.signed_in("ann")
    _post(ann, "/ui/admin/orgs", "/ui/admin/orgs", name="guild")
    org = "/ui/admin/orgs/guild"
    assert _post(ann, org, f"{org}/members", member="bob", role="member").status_code == 303
    bob = world.signed_in("bob")
    assert bob.get(org).status_code == 200  # a member reads the members ...
    refused = _post(bob, org, f"{org}/members", member="cyd", role="owner")
    assert refused.status_code == 403  # ... but does not manage them
    assert _post(bob, org, f"{org}/members/ann/remove").status_code == 403
    cyd = world.signed_in("cyd")
    assert cyd.get(org).status_code == 404  # a stranger learns nothing
    assert "guild" not in cyd.get("/ui/admin/orgs").text
    tokenless = ann.post(f"{org}/members/bob/remove", follow_redirects=False)
    assert tokenless.status_code == 403
    members = world.api("ann", "GET", "/api/v1/orgs/guild/members").json()
    assert sorted(m["member"] for m in members) == ["ann", "bob"]


# a model's access -------------------------------------------------------------------------------
def test_the_owner_grants_and_revokes_and_sets_the_visibility(world: World) -> None:
    ann, bob = world.signed_in("ann"), world.signed_in("bob")
    access = "/ui/models/ann/secret/access"
    assert "Access: visibility and grants" in ann.get("/ui/models/ann/secret").text
    assert bob.get("/ui/models/ann/secret").status_code == 404
    granted = _post(ann, access, "/ui/models/ann/secret/grants", principal="bob", right="call")
    assert granted.status_code == 303
    assert 'id="grant-bob"' in ann.get(access).text
    assert bob.get("/ui/models/ann/secret").status_code == 200  # bob reads it now
    assert bob.get(access).status_code == 403  # but may not manage it
    revoked = _post(ann, access, "/ui/models/ann/secret/grants/bob/revoke")
    assert revoked.status_code == 303
    assert bob.get("/ui/models/ann/secret").status_code == 404

    public = _post(ann, access, "/ui/models/ann/secret/visibility", visibility="public")
    assert public.status_code == 303
    assert world.api("ann", "GET", "/api/v1/models/ann/secret").json()["visibility"] == "public"
    assert bob.get("/ui/models/ann/secret").status_code == 200
    bad = _post(ann, access, "/ui/models/ann/secret/visibility", visibility="everyone")
    assert bad.status_code == 400 and "visibility is one of" in bad.text
    assert _post(ann, access, "/ui/models/ann/secret/visibility", visibility="private").status_code
    assert bob.get("/ui/models/ann/secret").status_code == 404
    actions = [e["action"] for e in world.audit(model="ann/secret", principal="ann")]
    assert {"model.grant", "model.revoke_grant", "model.update"} <= set(actions)


def test_a_reader_may_not_change_a_models_access(world: World) -> None:
    bob, ann = world.signed_in("bob"), world.signed_in("ann")
    token = csrf_in(bob.get("/ui/models/ann/sentiment").text)
    for action, fields in (
        ("visibility", {"visibility": "public"}),
        ("grants", {"principal": "bob", "right": "manage"}),
        ("grants/ann/revoke", {}),
    ):
        refused = bob.post(f"/ui/models/ann/sentiment/{action}", data={"csrf": token, **fields})
        assert refused.status_code in (403, 404), (action, refused.status_code)
    hidden = bob.post("/ui/models/ann/secret/visibility", data={"csrf": token, "visibility": "x"})
    assert hidden.status_code in (400, 404)  # the form's value is checked first; never 200
    tokenless = ann.post("/ui/models/ann/sentiment/visibility", data={"visibility": "public"})
    assert tokenless.status_code == 403
    model = world.api("ann", "GET", "/api/v1/models/ann/sentiment").json()
    assert model["visibility"] == "private"
    assert world.api("ann", "GET", "/api/v1/models/ann/sentiment/grants").json() == []


# promotions ------------------------------------------------------------------------------------
def test_a_promotion_is_requested_from_the_models_page_and_approved_by_another(
    world: World,
) -> None:
    ann = world.signed_in("ann")
    page = ann.get("/ui/models/ann/ranker")
    assert "Request a promotion" in page.text
    asked = _post(
        ann, "/ui/models/ann/ranker", "/ui/models/ann/ranker/promotions",
        alias="production", version="1.1.0", note="better ranking",
    )  # fmt: skip
    assert asked.status_code == 303, asked.text
    (pending,) = world.api("ann", "GET", "/api/v1/models/ann/ranker/promotions").json()
    assert (pending["alias"], pending["version"], pending["note"]) == (
        "production",
        "1.1.0",
        "better ranking",
    )
    (row,) = [e for e in world.audit(action="promotion.request") if e["principal"] == "ann"]
    assert row["resource"] == "ann/ranker" and "production" in row["version"]

    unknown = _post(
        ann, "/ui/models/ann/ranker", "/ui/models/ann/ranker/promotions",
        alias="production", version="9.9.9",
    )  # fmt: skip
    assert unknown.status_code == 404  # the model's page again, saying why
    refusal = unknown.text.split('id="promotion-error">')[1].split("</p>")[0]
    assert "9.9.9" in refusal
    bob = world.signed_in("bob")
    hidden = bob.post(
        "/ui/models/ann/ranker/promotions",
        data={"csrf": csrf_in(bob.get("/ui/").text), "alias": "production", "version": "1.1.0"},
    )
    assert hidden.status_code == 404

    admin = world.signed_in("admin")
    page = admin.get("/ui/models/ann/ranker")
    approve = f"/ui/models/ann/ranker/promotions/{pending['id']}/approve"
    assert approve in page.text
    approved = admin.post(approve, data={"csrf": csrf_in(page.text)}, follow_redirects=False)
    assert approved.status_code == 303
    aliases = world.api("ann", "GET", "/api/v1/models/ann/ranker/aliases").json()
    assert {a["alias"]: a["version"] for a in aliases}["production"] == "1.1.0"


def test_the_catalog_shows_what_the_registrys_listing_shows_to_each_person(world: World) -> None:
    """The search reads rows without the ORM and asks the policy itself: it must agree with
    the registry's listing for every kind of right (owner, organization, grant, visibility)."""
    assert world.api("ann", "POST", "/api/v1/orgs", json={"name": "club"}).status_code == 201
    added = world.api("ann", "PUT", "/api/v1/orgs/club/members/cyd", json={"role": "viewer"})
    assert added.status_code == 200, added.text
    shared = world.api(
        "ann", "PATCH", "/api/v1/models/ann/ranker", json={"visibility": "organization"}
    )
    assert shared.status_code == 200, shared.text
    granted = world.api(
        "ann", "PUT", "/api/v1/models/ann/secret/grants/club", json={"right": "call"}
    )
    assert granted.status_code == 200, granted.text
    platform = world.gateway.http.app.state.platform  # type: ignore[attr-defined]
    seen: dict[str, set[str]] = {}
    for who in ("admin", "ann", "bob", "cyd"):
        caller = platform.authenticator.authenticate(f"Simple {world.keys[who]}")
        listed = {f"{m.owner.name}/{m.name}" for m in platform.registry.list_models(caller)}
        page = world.signed_in(who).get("/ui/").text
        shown = set(re.findall(r'href="/ui/models/([\w-]+/[\w-]+)"', page))
        assert shown == listed, who
        seen[who] = shown
    assert {"ann/ranker", "ann/secret"} <= seen["cyd"]  # through the organization
    assert "ann/secret" not in seen["bob"]


@pytest.mark.parametrize(
    ("action", "fields"),
    [
        ("/ui/admin/users", {"name": "mallory"}),
        ("/ui/admin/orgs", {"name": "mallory-org"}),
        ("/ui/admin/orgs/lab/members", {"member": "cyd", "role": "owner"}),
        ("/ui/admin/orgs/lab/members/ann/remove", {}),
        ("/ui/models/ann/sentiment/visibility", {"visibility": "public"}),
        ("/ui/models/ann/sentiment/grants", {"principal": "cyd", "right": "manage"}),
        ("/ui/models/ann/sentiment/grants/bob/revoke", {}),
        ("/ui/models/ann/ranker/promotions", {"alias": "canary", "version": "1.1.0"}),
    ],
)
def test_every_admin_form_is_refused_without_its_csrf_token(
    world: World, action: str, fields: dict[str, str]
) -> None:
    before = _state(world)
    for token in (None, "forged"):
        sent = fields if token is None else {"csrf": token, **fields}
        refused = world.signed_in("admin").post(action, data=sent, follow_redirects=False)
        assert refused.status_code == 403, (action, refused.status_code)
        assert "CSRF token" in refused.text
    assert _state(world) == before


def _state(world: World) -> list[Any]:
    """What the forms could change, as the API reads it."""
    reads = (
        "/api/v1/principals", "/api/v1/orgs", "/api/v1/models/ann/sentiment",
        "/api/v1/models/ann/sentiment/grants", "/api/v1/models/ann/ranker/promotions?status=all",
    )  # fmt: skip
    state = [world.api("admin", "GET", path).json() for path in reads]
    for org in ("lab", "guild", "club"):
        members = world.api("admin", "GET", f"/api/v1/orgs/{org}/members")
        state.append(members.json() if members.status_code == 200 else members.status_code)
    return state


def test_a_refused_form_shows_its_page_again_saying_why(world: World) -> None:
    ann = world.signed_in("ann")
    _post(ann, "/ui/admin/orgs", "/ui/admin/orgs", name="band")
    band = "/ui/admin/orgs/band"
    nobody = _post(ann, band, f"{band}/members", member="nobody", role="member")
    assert nobody.status_code == 404
    assert 'id="form-error"' in nobody.text and "nobody" in nobody.text
    assert "Add a member" in nobody.text  # the organization's page, not a bare 404
    model = "/ui/models/ann/sentiment"
    unknown = _post(ann, f"{model}/access", f"{model}/grants", principal="nobody", right="call")
    assert unknown.status_code == 404 and "Grant a right" in unknown.text
    world.keys.update(new_users(world.gateway.client, "zed"))
    zed = world.signed_in("zed")  # a stranger's refusal is the plain not-found page
    hidden = _post(zed, "/ui/", "/ui/models/ann/secret/grants", principal="zed", right="manage")
    assert hidden.status_code == 404 and "Grant a right" not in hidden.text
