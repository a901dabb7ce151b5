"""Two gateways on one registry agree within a second: a change made through one (a key
revoked, a grant) drops the other's caches through the registry's cache epoch."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from algora.db.engine import create_registry_engine, make_session_factory
from algora.db.migrate import upgrade
from algora.gateway.changes import ChangeFeed

from ..conftest import DATABASES, database_url, in_process


def test_a_feed_forgets_what_another_changed_and_not_its_own(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    engine = create_registry_engine(url)
    upgrade(engine)
    sessions: sessionmaker = make_session_factory(engine)  # type: ignore[type-arg]
    forgotten = {"a": 0, "b": 0}
    a = ChangeFeed(sessions, [lambda: forgotten.__setitem__("a", forgotten["a"] + 1)])
    b = ChangeFeed(sessions, [lambda: forgotten.__setitem__("b", forgotten["b"] + 1)])
    asyncio.run(a.start()), asyncio.run(b.start())  # both have read the epoch as it is
    a.changed()
    a.tick()
    b.tick()
    assert forgotten == {"a": 0, "b": 1}
    b.changed()
    a.changed()  # both changed something before either told the other
    b.tick()
    a.tick()
    assert forgotten == {"a": 1, "b": 1}  # a saw b's change as it published its own
    b.tick()
    assert forgotten == {"a": 1, "b": 2}
    engine.dispose()


@pytest.mark.parametrize("kind", DATABASES)
def test_a_key_revoked_through_one_gateway_is_refused_by_the_other_within_a_second(
    kind: str, tmp_path: Path
) -> None:
    with database_url(kind) as url:
        url = url or f"sqlite:///{tmp_path / 'shared.db'}"
        with in_process(tmp_path / "a", database_url=url) as a:
            (tmp_path / "b").mkdir()
            (tmp_path / "b" / "admin.key").write_text(a.key)  # one registry, one admin
            with in_process(tmp_path / "b", database_url=url) as b:
                made = a.http.post("/api/v1/keys", json={"scopes": ["call"]}, headers=a.auth)
                assert made.status_code == 201, made.text
                mine = {"Authorization": f"Simple {made.json()['key']}"}
                assert b.http.get("/api/v1/whoami", headers=mine).status_code == 200  # cached
                revoked = a.http.delete(f"/api/v1/keys/{made.json()['key_id']}", headers=a.auth)
                assert revoked.is_success, revoked.text
                started = time.monotonic()
                while b.http.get("/api/v1/whoami", headers=mine).status_code == 200:
                    assert time.monotonic() - started < 5, "still accepted after 5 s"
                    time.sleep(0.02)
                took = time.monotonic() - started
                assert b.http.get("/api/v1/whoami", headers=mine).status_code == 401
                assert took < 1.5, f"the other gateway accepted the revoked key for {took:.2f} s"
