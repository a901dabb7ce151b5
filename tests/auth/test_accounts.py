"""The accounts service's rules, called directly: users, service accounts, organizations,
members, grants and principal limits (the HTTP routes of both APIs are thin over these)."""

from __future__ import annotations

import pytest

from algora.auth.accounts import check_name
from algora.auth.keyring import LimitChange
from algora.auth.profiles import ProfileChange, ProfileView
from algora.errors import (
    BadRequest,
    Conflict,
    InvalidInput,
    ModelNotFound,
    NotFound,
    PermissionDenied,
)

from .conftest import World


def test_one_name_rule_for_every_kind_of_principal() -> None:
    assert check_name("team-7_a", "user") == "team-7_a"
    for bad in ("Upper", "-dash", "", "a" * 65, "dot.ted", "new\n"):
        with pytest.raises(BadRequest, match="cannot be an Algora organization name: use 1-64"):
            check_name(bad, "organization")


def test_only_admins_create_users_whose_first_key_works(world: World) -> None:
    olga, _ = world.user("olga")
    assert (olga.name, olga.kind, olga.is_admin) == ("olga", "user", False)
    with pytest.raises(PermissionDenied, match="only an admin may create users"):
        world.accounts.create_user_with_key(olga, "sneaky")
    with pytest.raises(PermissionDenied):
        world.accounts.create_user(olga, "sneaky")
    with pytest.raises(Conflict, match="'olga' already exists"):
        world.accounts.create_user_with_key(world.admin, "olga")
    with pytest.raises(BadRequest, match="user name"):
        world.accounts.create_user_with_key(world.admin, "Olga")
    names = {p.name for p in world.accounts.principals(world.admin)}
    assert names == {"admin", "olga"}


def test_a_user_made_without_a_key_keeps_its_profile(world: World) -> None:
    profile = ProfileChange(email="n@example.com", full_name="New Bie", company_name="Acme")
    made = world.accounts.create_user(world.admin, "newbie", profile)
    assert made.principal.name == "newbie" and made.principal.kind == "user"
    assert made.profile == ProfileView(
        email="n@example.com", full_name="New Bie", company_name="Acme"
    )
    with pytest.raises(InvalidInput, match="not an email address"):
        world.accounts.create_user(world.admin, "badmail", ProfileChange(email="no at sign"))
    assert "badmail" not in {p.name for p in world.accounts.principals(world.admin)}


def test_organizations_are_made_by_users_and_hidden_from_strangers(world: World) -> None:
    olga, olga_key = world.user("olga")
    otto, _ = world.user("otto")
    made = world.accounts.create_org(olga, "acme")
    assert made.principal.kind == "org" and made.profile == ProfileView()
    assert "callers" in world.forgotten  # the creator's cached roles
    olga = world.caller(olga_key)
    assert [(m.member, m.role) for m in world.accounts.members(olga, "acme")] == [("olga", "owner")]
    assert [o.name for o in world.accounts.orgs(olga)] == ["acme"]
    assert world.accounts.orgs(otto) == []
    assert [o.name for o in world.accounts.orgs(world.admin)] == ["acme"]
    for look in (
        lambda: world.accounts.org(otto, "acme"),
        lambda: world.accounts.members(otto, "acme"),
        lambda: world.accounts.check_manages_org(otto, "acme"),
        lambda: world.accounts.org(olga, "nowhere"),
    ):
        with pytest.raises(NotFound, match="no organization"):
            look()
    with pytest.raises(Conflict):
        world.accounts.create_org(otto, "acme")
    service = world.accounts.create_service_account(olga, "bot")
    bot_key = world.keyring.create_key(olga, "bot key", principal="bot").secret
    with pytest.raises(PermissionDenied, match="only users create organizations"):
        world.accounts.create_org(world.caller(bot_key), "bots-inc")
    assert service.owner == "olga"


def test_an_organizations_profile_is_changed_by_its_managers(world: World) -> None:
    olga, olga_key = world.user("olga")
    vic, vic_key = world.user("vic")
    profile = ProfileChange(full_name="Acme", email="a@example.com", org_type="pro")
    world.accounts.create_org(olga, "acme", profile)
    olga = world.caller(olga_key)
    world.accounts.set_member(olga, "acme", "vic", "viewer")
    vic = world.caller(vic_key)
    assert world.accounts.org(vic, "acme").profile.org_type == "pro"
    with pytest.raises(PermissionDenied, match="only owners and admins of 'acme'"):
        world.accounts.check_manages_org(vic, "acme")
    with pytest.raises(PermissionDenied):
        world.accounts.edit_org(vic, "acme", ProfileChange(full_name="Ours"))
    with pytest.raises(InvalidInput, match="not an organization type"):
        world.accounts.edit_org(olga, "acme", ProfileChange(org_type="enterprise"))
    with pytest.raises(InvalidInput, match="http"):
        world.accounts.edit_org(olga, "acme", ProfileChange(url="ftp://acme"))
    edited = world.accounts.edit_org(olga, "acme", ProfileChange(url="https://acme.example"))
    assert (edited.profile.full_name, edited.profile.url) == ("Acme", "https://acme.example")
    assert world.accounts.org(world.admin, "acme").profile == edited.profile


def test_members_owners_admins_and_the_last_owner(world: World) -> None:
    olga, olga_key = world.user("olga")
    adam, adam_key = world.user("adam")
    world.user("mia")
    world.accounts.create_org(olga, "acme")
    olga = world.caller(olga_key)
    world.accounts.set_member(olga, "acme", "adam", "admin")
    adam = world.caller(adam_key)
    assert {"callers", "rights"} <= set(world.forgotten)
    world.accounts.set_member(adam, "acme", "mia", "member")  # admins manage members
    with pytest.raises(PermissionDenied, match="only owners of 'acme'"):
        world.accounts.set_member(adam, "acme", "mia", "owner")
    with pytest.raises(PermissionDenied, match="only owners of 'acme'"):
        world.accounts.remove_member(adam, "acme", "olga")
    with pytest.raises(Conflict, match="at least one owner"):
        world.accounts.set_member(olga, "acme", "olga", "admin")
    with pytest.raises(BadRequest, match="a role is one of"):
        world.accounts.set_member(olga, "acme", "mia", "boss")
    with pytest.raises(BadRequest, match="cannot be a member of another"):
        world.accounts.set_member(olga, "acme", "acme", "member")
    with pytest.raises(NotFound, match="no principal 'nobody'"):
        world.accounts.set_member(olga, "acme", "nobody", "member")
    world.accounts.remove_member(adam, "acme", "mia")
    with pytest.raises(NotFound, match="'mia' is not a member of 'acme'"):
        world.accounts.remove_member(adam, "acme", "mia")
    roles = {m.member: m.role for m in world.accounts.members(olga, "acme")}
    assert roles == {"olga": "owner", "adam": "admin"}


def test_an_invitation_makes_a_member_and_keeps_an_existing_role(world: World) -> None:
    olga, olga_key = world.user("olga")
    mia, mia_key = world.user("mia")
    world.user("vic")
    world.accounts.create_org(olga, "acme")
    olga = world.caller(olga_key)
    world.accounts.invite(olga, "acme", "mia")
    world.accounts.invite(olga, "acme", "olga")
    roles = {m.member: m.role for m in world.accounts.members(olga, "acme")}
    assert roles == {"olga": "owner", "mia": "member"}
    mia = world.caller(mia_key)
    with pytest.raises(PermissionDenied):
        world.accounts.invite(mia, "acme", "vic")  # a member may not invite
    with pytest.raises(NotFound, match="no user 'nobody'"):
        world.accounts.invite(olga, "acme", "nobody")
    with pytest.raises(BadRequest):
        world.accounts.invite(olga, "acme", "acme")


def test_service_accounts_belong_to_their_creator_or_its_organization(world: World) -> None:
    olga, olga_key = world.user("olga")
    mia, mia_key = world.user("mia")
    otto, _ = world.user("otto")
    world.accounts.create_org(olga, "acme")
    olga = world.caller(olga_key)
    world.accounts.set_member(olga, "acme", "mia", "member")
    mia = world.caller(mia_key)
    assert world.accounts.create_service_account(olga, "acme-bot", "acme").owner == "acme"
    assert world.accounts.create_service_account(mia, "mia-bot").owner == "mia"
    with pytest.raises(PermissionDenied, match="only admins of 'acme'"):
        world.accounts.create_service_account(mia, "sneaky-bot", "acme")
    with pytest.raises(NotFound):  # another user is not found, as a missing one (issue 11)
        world.accounts.create_service_account(otto, "sneaky-bot", "olga")
    with pytest.raises(NotFound):
        world.accounts.create_service_account(olga, "lost-bot", "nowhere")
    bot = world.caller(world.keyring.create_key(mia, principal="mia-bot").secret)
    with pytest.raises(BadRequest, match="cannot own another"):
        world.accounts.create_service_account(bot, "bot-bot")
    with pytest.raises(BadRequest, match="service account name"):
        world.accounts.create_service_account(olga, "Bot")

    # Who sees whom: an admin all; else oneself, one's organizations, the bots one manages.
    assert {p.name for p in world.accounts.principals(olga)} == {"olga", "acme", "acme-bot"}
    assert {p.name for p in world.accounts.principals(mia)} == {"mia", "acme", "mia-bot"}
    assert {p.name for p in world.accounts.principals(otto)} == {"otto"}
    assert len(world.accounts.principals(world.admin)) == 7


def test_only_admins_set_a_principals_default_limit(world: World) -> None:
    olga, _ = world.user("olga")
    with pytest.raises(PermissionDenied, match="default rate limit"):
        world.accounts.limit_principal(olga, "olga", LimitChange(rate_per_second=100))
    with pytest.raises(NotFound, match="no principal 'nobody'"):
        world.accounts.limit_principal(world.admin, "nobody", LimitChange(rate_per_second=1))
    world.forgotten.clear()
    set_both = world.accounts.limit_principal(
        world.admin, "olga", LimitChange(rate_per_second=5, burst=10)
    )
    assert (set_both.rate_per_second, set_both.burst) == (5, 10)
    assert world.forgotten == ["callers"]
    kept = world.accounts.limit_principal(world.admin, "olga", LimitChange(burst=None))
    assert (kept.rate_per_second, kept.burst) == (5, None)  # the rate was left as it was
    removed = world.accounts.limit_principal(world.admin, "olga", LimitChange(rate_per_second=None))
    assert (removed.rate_per_second, removed.burst) == (None, None)


def test_a_models_managers_give_and_take_grants(world: World) -> None:
    olga, olga_key = world.user("olga")
    vic, vic_key = world.user("vic")
    otto, _ = world.user("otto")
    stranger, _ = world.user("stranger")
    world.accounts.create_org(olga, "acme")
    olga = world.caller(olga_key)
    world.accounts.set_member(olga, "acme", "vic", "viewer")
    vic = world.caller(vic_key)
    world.model("acme", "hello")
    world.forgotten.clear()
    given = world.accounts.set_grant(olga, "acme", "hello", "otto", "call")
    assert [(g.model, g.principal, g.kind, g.right) for g in given] == [
        ("acme/hello", "otto", "user", "call")
    ]
    assert world.forgotten == ["rights"]
    changed = world.accounts.set_grant(olga, "acme", "hello", "otto", "manage")
    assert [g.right for g in changed] == ["manage"]
    with pytest.raises(PermissionDenied, match="may not manage"):
        world.accounts.grants(vic, "acme", "hello")  # a viewer may call it, not manage it
    with pytest.raises(ModelNotFound):
        world.accounts.set_grant(stranger, "acme", "hello", "otto", "call")
    with pytest.raises(BadRequest, match="a right is one of"):
        world.accounts.set_grant(olga, "acme", "hello", "otto", "own")
    with pytest.raises(NotFound, match="no principal"):
        world.accounts.set_grant(olga, "acme", "hello", "nobody", "call")
    assert [g.principal for g in world.accounts.grants(otto, "acme", "hello")] == ["otto"]
    world.accounts.remove_grant(olga, "acme", "hello", "otto")
    assert world.accounts.grants(olga, "acme", "hello") == []
    with pytest.raises(NotFound, match="holds no grant"):
        world.accounts.remove_grant(olga, "acme", "hello", "otto")
