"""The keyring's rules, called directly: whose keys a caller manages, scopes that only narrow,
limits that only an admin loosens."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest

from algora.auth.keyring import KEEP, LimitChange, ModelLimitView
from algora.errors import BadRequest, LastAdminKey, NotFound, PermissionDenied, Unauthenticated

from .conftest import World


def test_a_limit_change_keeps_removes_or_sets_each_field() -> None:
    assert LimitChange().applied(5, 10) == (5, 10)
    assert LimitChange(rate_per_second=None).applied(5, 10) == (None, 10)
    assert LimitChange(rate_per_second=2, burst=KEEP).applied(5, 10) == (2, 10)
    assert LimitChange(burst=3).applied(None, None) == (None, 3)


def test_a_new_key_only_narrows_the_scopes_of_the_key_that_makes_it(world: World) -> None:
    olga, _ = world.user("olga")
    narrow = world.keyring.create_key(olga, "reader", scopes=["models:read", "call"])
    assert narrow.principal == "olga" and narrow.scopes == ("models:read", "call")
    reader = world.caller(narrow.secret)
    inherited = world.keyring.create_key(reader, "same")
    assert inherited.scopes == ("models:read", "call")
    with pytest.raises(PermissionDenied, match="may only narrow"):
        world.keyring.create_key(reader, "wider", scopes=["*"])
    with pytest.raises(PermissionDenied, match="'keys:manage' scope"):
        world.keyring.create_key(reader, "wider", scopes=["keys:manage"])
    with pytest.raises(BadRequest):
        world.keyring.create_key(olga, "odd", scopes=["no-such-scope"])
    expiring = world.keyring.create_key(olga, "brief", expires_in_days=1)
    assert expiring.expires_at is not None
    listed = {k.key_id: k for k in world.keyring.list_keys(olga)}
    assert set(listed) >= {narrow.key_id, inherited.key_id, expiring.key_id}
    assert listed[narrow.key_id].scopes == ("models:read", "call")
    assert all(k.principal == "olga" and not k.revoked for k in listed.values())


def test_whose_keys_a_caller_manages(world: World) -> None:
    olga, olga_key = world.user("olga")
    mia, mia_key = world.user("mia")
    otto, _ = world.user("otto")
    world.accounts.create_org(olga, "acme")
    olga = world.caller(olga_key)
    world.accounts.set_member(olga, "acme", "mia", "member")
    mia = world.caller(mia_key)
    world.accounts.create_service_account(olga, "acme-bot", "acme")
    world.accounts.create_service_account(mia, "mia-bot")

    # Its owner, and the owning organization's admins and owners, manage a service account's.
    assert world.keyring.create_key(olga, principal="acme-bot").principal == "acme-bot"
    assert world.keyring.create_key(mia, principal="mia-bot").principal == "mia-bot"
    assert world.keyring.list_keys(world.admin, "mia-bot")[0].principal == "mia-bot"
    for who, whose in ((mia, "acme-bot"), (otto, "mia-bot"), (otto, "olga"), (mia, "nobody")):
        with pytest.raises(NotFound, match="whose keys you manage"):
            world.keyring.create_key(who, principal=whose)
        with pytest.raises(NotFound):
            world.keyring.list_keys(who, whose)
    olgas = world.keyring.list_keys(olga)[0].key_id
    for act in (
        lambda: world.keyring.revoke_key(otto, olgas),
        lambda: world.keyring.limit_key(otto, olgas, LimitChange(rate_per_second=1)),
        lambda: world.keyring.model_limits(otto, olgas),
        lambda: world.keyring.set_model_limits(otto, olgas, []),
    ):
        with pytest.raises(NotFound, match=f"no key '{olgas}'"):
            act()


def test_a_revoked_key_stops_working_at_once(world: World) -> None:
    olga, olga_key = world.user("olga")
    spare = world.keyring.create_key(olga, "spare")
    assert world.caller(spare.secret).key_id == spare.key_id  # now cached
    world.forgotten.clear()
    world.keyring.revoke_key(olga, spare.key_id)
    world.keyring.revoke_key(olga, spare.key_id)  # twice: still revoked, no error
    assert world.forgotten == ["callers", "callers"]
    with pytest.raises(Unauthenticated):
        world.caller(spare.secret)
    revoked = {k.key_id: k.revoked for k in world.keyring.list_keys(world.caller(olga_key))}
    assert revoked[spare.key_id] is True


def test_owners_tighten_a_keys_limit_and_only_admins_loosen_it(world: World) -> None:
    olga, _ = world.user("olga")
    key = world.keyring.create_key(olga, "limited").key_id
    tightened = world.keyring.limit_key(olga, key, LimitChange(rate_per_second=5, burst=5))
    assert (tightened.rate_per_second, tightened.burst) == (5, 5)
    assert world.keyring.limit_key(olga, key, LimitChange(burst=2)).rate_per_second == 5
    for looser in (
        LimitChange(rate_per_second=50),
        LimitChange(burst=100),
        LimitChange(rate_per_second=None),  # no limit at all: the loosest
    ):
        with pytest.raises(PermissionDenied, match="only an admin may loosen"):
            world.keyring.limit_key(olga, key, looser)
    removed = world.keyring.limit_key(world.admin, key, LimitChange(rate_per_second=None))
    assert removed.rate_per_second is None

    # A key without its own limit inherits its principal's: loosening past that is refused.
    world.accounts.limit_principal(world.admin, "olga", LimitChange(rate_per_second=10))
    with pytest.raises(PermissionDenied):
        world.keyring.limit_key(olga, key, LimitChange(rate_per_second=20))
    assert world.keyring.limit_key(olga, key, LimitChange(rate_per_second=8)).burst == 2


def test_per_model_limits_are_replaced_and_only_admins_loosen_them(world: World) -> None:
    olga, _ = world.user("olga")
    key = world.keyring.create_key(olga, "limited").key_id
    wanted = [ModelLimitView("acme/*", 10), ModelLimitView("acme/hello", 2, 4)]
    world.forgotten.clear()
    stored = world.keyring.set_model_limits(olga, key, wanted)
    assert stored == [ModelLimitView("acme/*", 10, None), ModelLimitView("acme/hello", 2, 4)]
    assert world.forgotten == ["callers"]
    assert world.keyring.model_limits(olga, key) == stored
    with pytest.raises(PermissionDenied, match="'acme/hello'"):
        world.keyring.set_model_limits(olga, key, [ModelLimitView("acme/*", 10)])  # removed
    with pytest.raises(PermissionDenied, match="'acme/\\*'"):
        world.keyring.set_model_limits(olga, key, [ModelLimitView("acme/*", 11), wanted[1]])
    tighter = [ModelLimitView("acme/*", 1), ModelLimitView("acme/hello", 1, 1)]
    assert world.keyring.set_model_limits(olga, key, tighter) == tighter
    assert world.keyring.set_model_limits(world.admin, key, []) == []
    for bad, message in (
        ([ModelLimitView("acme", 1)], "is not 'owner/name'"),
        ([ModelLimitView("Acme/x", 1)], "is not 'owner/name'"),
        ([ModelLimitView("a/b", 1), ModelLimitView("a/b", 2)], "given twice"),
        ([ModelLimitView("a/b", 0)], "positive"),
        ([ModelLimitView("a/b", 1, 0)], "burst"),
    ):
        with pytest.raises(BadRequest, match=message):
            world.keyring.set_model_limits(world.admin, key, bad)
    assert world.keyring.model_limits(olga, key) == []


def test_concurrent_revocations_never_take_an_admin_s_last_two_keys(world: World) -> None:
    admin = world.admin  # its rights, whichever of its keys is still active
    for _ in range(5):
        first = world.keyring.create_key(admin, "first")
        second = world.keyring.create_key(admin, "second")
        for key in world.keyring.list_keys(admin):
            if key.key_id not in (first.key_id, second.key_id) and not key.revoked:
                world.keyring.revoke_key(admin, key.key_id)
        barrier = Barrier(2)

        def revoke(key_id: str, barrier: Barrier = barrier) -> str:
            barrier.wait()
            try:
                world.keyring.revoke_key(admin, key_id)
            except LastAdminKey:
                return "refused"
            return "revoked"

        with ThreadPoolExecutor(2) as pool:
            outcomes = sorted(pool.map(revoke, (first.key_id, second.key_id)))
        assert outcomes == ["refused", "revoked"]
        assert len([k for k in world.keyring.list_keys(admin) if not k.revoked]) == 1
