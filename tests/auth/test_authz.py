"""Authorization decisions as pure functions: scopes, model rights, organization roles."""

from __future__ import annotations

import pytest

from algora.auth.policy import can, can_manage_org, model_right, require, require_scope
from algora.auth.principals import Caller
from algora.auth.scopes import covers, has_scope, validate_scopes
from algora.db.tables import Grant, Membership, Model, Principal
from algora.errors import BadRequest, ModelNotFound, PermissionDenied

ORG, OWNER, OTHER, FRIEND = 10, 20, 30, 40


def caller(
    principal_id: int = OTHER,
    *,
    scopes: tuple[str, ...] = ("*",),
    is_admin: bool = False,
    memberships: tuple[tuple[int, str], ...] = (),
) -> Caller:
    return Caller(
        principal_id=principal_id,
        name=f"p{principal_id}",
        is_admin=is_admin,
        key_id="k",
        scopes=scopes,
        memberships=memberships,
    )


def model(
    owner_id: int = OWNER,
    visibility: str = "private",
    grants: tuple[tuple[int, str], ...] = (),
    owner_orgs: tuple[int, ...] = (),
) -> Model:
    owner = Principal(id=owner_id, name=f"p{owner_id}", kind="user")
    owner.memberships = [
        Membership(org_id=o, member_id=owner_id, role="member") for o in owner_orgs
    ]
    row = Model(id=1, owner_id=owner_id, owner=owner, name="m", visibility=visibility)
    row.grants = [Grant(model_id=1, grantee_id=g, right=r) for g, r in grants]
    return row


# scopes -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("scopes", "needed", "resource", "expected"),
    [
        (("*",), "call", "a/b", True),
        (("*",), "audit:read", None, False),  # privileged: not through '*' for a non-admin
        (("call",), "call", "a/b", True),
        (("call:a/*",), "call", "a/b", True),
        (("call:a/*",), "call", "b/a", False),
        (("call:a/*",), "call", None, True),  # the route lets it in; the model is checked later
        (("call:a/b",), "call", "a/bc", False),
        (("models:read",), "call", "a/b", False),
        (("data:read:coll/*",), "data:read", "coll/x", True),
        (("data:read:coll/*",), "data:write", "coll/x", False),
        (("audit:read",), "audit:read", None, True),
        ((), "models:read", None, False),
        (("nonsense",), "models:read", None, False),
    ],
)
def test_scopes_deny_by_default(scopes, needed, resource, expected) -> None:
    assert has_scope(scopes, needed, resource) is expected


def test_star_covers_privileged_scopes_only_for_admins() -> None:
    assert has_scope(("*",), "audit:read", is_admin=True)
    assert not has_scope(("*",), "audit:read", is_admin=False)


@pytest.mark.parametrize("bad", ["call:", "call:A/B", "models:write", "call:a b", "*:read"])
def test_unknown_or_malformed_scopes_are_refused(bad: str) -> None:
    with pytest.raises(BadRequest):
        validate_scopes([bad])


def test_validate_scopes_keeps_order_and_drops_duplicates() -> None:
    assert validate_scopes(["call:a/*", "models:read", "call:a/*"]) == ["call:a/*", "models:read"]


@pytest.mark.parametrize(
    ("held", "wanted", "is_admin", "expected"),
    [
        (("*",), "*", False, True),
        (("models:read",), "*", False, False),
        (("*",), "audit:read", False, False),
        (("*",), "audit:read", True, True),
        (("audit:read",), "audit:read", False, True),
        (("call",), "call:a/*", False, True),
        (("call:a/*",), "call:a/b", False, True),
        (("call:a/*",), "call:a/b*", False, False),
        (("call:a/*",), "call", False, False),
        (("call:a/*",), "call:b/c", False, False),
        (("models:read",), "models:publish", False, False),
    ],
)
def test_a_new_key_may_only_narrow_its_creators_scopes(held, wanted, is_admin, expected) -> None:
    assert covers(held, wanted, is_admin=is_admin) is expected


def test_require_scope_names_the_missing_scope() -> None:
    require_scope(caller(scopes=("call:p20/*",)), "call", "p20/m")
    with pytest.raises(PermissionDenied, match="lacks the 'call' scope for 'p30/m'"):
        require_scope(caller(scopes=("call:p20/*",)), "call", "p30/m")


# model rights -------------------------------------------------------------------------------
def test_owner_and_admin_hold_every_right_strangers_none() -> None:
    private = model()
    assert model_right(caller(OWNER), private) == "manage"
    assert model_right(caller(is_admin=True), private) == "manage"
    assert model_right(caller(), private) is None
    with pytest.raises(ModelNotFound):
        require(caller(), "read", private)


@pytest.mark.parametrize(
    ("role", "right"),
    [("viewer", "call"), ("member", "publish"), ("admin", "manage"), ("owner", "manage")],
)
def test_members_of_the_owning_org_act_by_role(role: str, right: str) -> None:
    org_model = model(owner_id=ORG)
    member = caller(memberships=((ORG, role),))
    assert model_right(member, org_model) == right
    assert can(member, "call", org_model)
    if right == "call":
        with pytest.raises(PermissionDenied):
            require(member, "publish", org_model)


def test_visibility_public_organization_private() -> None:
    stranger, colleague = caller(), caller(memberships=((ORG, "viewer"),))
    assert can(stranger, "call", model(visibility="public"))
    assert not can(stranger, "publish", model(visibility="public"))
    shared = model(visibility="organization", owner_orgs=(ORG,))
    assert can(colleague, "call", shared) and not can(stranger, "read", shared)
    assert not can(colleague, "read", model(visibility="private", owner_orgs=(ORG,)))


def test_grants_to_a_user_or_to_an_organization() -> None:
    granted = model(grants=((FRIEND, "call"), (ORG, "manage")))
    assert model_right(caller(FRIEND), granted) == "call"
    assert model_right(caller(memberships=((ORG, "viewer"),)), granted) == "manage"
    assert model_right(caller(), granted) is None


def test_only_owners_and_admins_manage_an_org() -> None:
    assert can_manage_org(caller(memberships=((ORG, "admin"),)), ORG)
    assert can_manage_org(caller(memberships=((ORG, "owner"),)), ORG)
    assert not can_manage_org(caller(memberships=((ORG, "member"),)), ORG)
    assert not can_manage_org(caller(memberships=((ORG + 1, "owner"),)), ORG)
    assert can_manage_org(caller(is_admin=True), ORG)
