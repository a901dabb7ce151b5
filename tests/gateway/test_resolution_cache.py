"""Warm calls resolve their version from memory, and still see a change another process made.

A change made through this gateway clears the cache at once (the publish, deprecation and alias
tests cover that). A change made elsewhere (another gateway on the same registry) is seen once
the cached resolution is older than its freshness: the next call is still answered from memory
while one refresh reads the registry, and the calls after it get the new version. A resolution
left idle past its grace is never trusted again without the database.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from algora.auth.principals import Authenticator
from algora.db.engine import create_registry_engine, make_session_factory
from algora.gateway import calls
from algora.registry.service import Registry
from algora.settings import Settings
from algora.testing import write_model

from ..conftest import ECHO_MODEL, InProcess, in_process

FRESH = 1.0
GRACE = 2.0


@pytest.fixture
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InProcess]:
    monkeypatch.setattr(calls, "_RESOLVE_SECONDS", FRESH)
    monkeypatch.setattr(calls, "_STALE_GRACE_SECONDS", GRACE)
    with in_process(tmp_path / "data") as gw:
        folder = write_model(tmp_path / "echo", "echo", ECHO_MODEL, entrypoint="model:Echo")
        gw.client.publish(folder, version="1.0.0")
        gw.client.publish(folder, version="1.1.0")
        _served_version(gw)  # the worker starts: the tests' calls are warm ones
        time.sleep(FRESH + GRACE + 0.05)  # and the resolution that started it is forgotten
        yield gw


def _served_version(gw: InProcess) -> str:
    response = gw.http.post("/v1/algo/admin/echo", json="x", headers=gw.auth)
    assert response.status_code == 200, response.text
    return response.headers["x-algora-version"]


def _deprecate_elsewhere(data_dir: Path, key: str, semver: str) -> None:
    """Deprecate through a registry of its own on the same database: this gateway is not told."""
    engine = create_registry_engine(Settings(data_dir=data_dir).resolved_database_url)
    try:
        sessions = make_session_factory(engine)
        admin = Authenticator(sessions).authenticate(f"Simple {key}")
        Registry(sessions).deprecate_version(admin, "admin", "echo", semver, True)
    finally:
        engine.dispose()


def test_a_change_made_elsewhere_is_served_after_one_refresh(gateway: InProcess) -> None:
    assert _served_version(gateway) == "1.1.0"
    _deprecate_elsewhere(gateway.data_dir, gateway.key, "1.1.0")
    assert _served_version(gateway) == "1.1.0"  # fresh: from memory
    time.sleep(FRESH + 0.05)
    seen = [_served_version(gateway)]  # stale within grace: from memory, starts the refresh
    deadline = time.monotonic() + 5
    while seen[-1] != "1.0.0" and time.monotonic() < deadline:
        time.sleep(0.02)
        seen.append(_served_version(gateway))
    assert seen[-1] == "1.0.0", seen
    assert seen[0] == "1.1.0"


def test_a_resolution_idle_past_its_grace_is_read_again(gateway: InProcess) -> None:
    assert _served_version(gateway) == "1.1.0"
    _deprecate_elsewhere(gateway.data_dir, gateway.key, "1.1.0")
    time.sleep(FRESH + GRACE + 0.05)
    assert _served_version(gateway) == "1.0.0"
