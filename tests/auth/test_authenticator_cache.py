"""The key cache: when a busy key's entry expires, one request reloads it from the database
while the others keep the caller they had, for a bounded time; a revocation ends it."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from algora.auth.keys import hash_key
from algora.errors import Unauthenticated

from .conftest import World


def _expire(world: World, secret: str, seconds_ago: float) -> None:
    authenticator = world.authenticator
    digest = hash_key(secret)
    _expires, caller = authenticator._cache[digest]
    authenticator._cache[digest] = (time.monotonic() - seconds_ago, caller)


def test_an_expired_key_is_reloaded_by_one_request_while_others_keep_their_caller(
    world: World, tmp_path: Path
) -> None:
    header = f"Simple {world.admin_key}"
    admin = world.authenticator.authenticate(header)
    assert world.authenticator.cached(header) == admin
    _expire(world, world.admin_key, 1)
    assert world.authenticator.cached(header) is None  # nobody reloads it: the caller must

    # A reload that cannot finish yet: the database is locked for writing (the reload records
    # the key's last use), so the reloading request waits.
    lock = sqlite3.connect(tmp_path / "registry.db", isolation_level=None, timeout=30)
    lock.execute("BEGIN IMMEDIATE")
    done = threading.Event()
    reloaded: list[object] = []
    reloader = threading.Thread(
        target=lambda: (reloaded.append(world.authenticator.authenticate(header)), done.set())
    )
    reloader.start()
    deadline = time.monotonic() + 10
    while hash_key(world.admin_key) not in world.authenticator._reloading:
        assert time.monotonic() < deadline, "the reload did not start"
        time.sleep(0.005)
    assert world.authenticator.cached(header) == admin  # the others: no database, no wait
    assert world.authenticator.authenticate(header) == admin
    _expire(world, world.admin_key, 6)  # but not for ever
    assert world.authenticator.cached(header) is None
    lock.execute("ROLLBACK")
    lock.close()
    assert done.wait(30)
    reloader.join()
    assert reloaded == [admin]
    assert world.authenticator.cached(header) == admin  # fresh again


def test_a_key_revoked_elsewhere_is_dropped_when_its_reload_fails(world: World) -> None:
    caller, secret = world.user("ann")
    header = f"Simple {secret}"
    world.keyring.revoke_key(world.admin, caller.key_id)
    # Another gateway revoked it: this one only learns at the reload after expiry.
    world.authenticator._cache[hash_key(secret)] = (time.monotonic() - 1, caller)
    with pytest.raises(Unauthenticated):
        world.authenticator.authenticate(header)
    assert world.authenticator.cached(header) is None
    assert hash_key(secret) not in world.authenticator._reloading
