"""Gateway leases: a gateway starting beside another leaves its builds alone, and fails those of
a gateway that stopped, crashed or stalled past its lease."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from algora.db.shared_state import GatewayLease
from algora.db.tables import Model, Principal, Version
from algora.platform import Platform
from algora.settings import Settings


def _building(platform: Platform, name: str) -> int:
    """A version of a new model of the admin's, reserved (``building``) by ``platform``."""
    with platform.sessions() as session:
        admin = session.scalars(select(Principal.id).where(Principal.name == "admin")).one()
        model = Model(owner_id=admin, name=name)
        session.add(model)
        session.commit()
        model_id = model.id
    version = platform.registry.create_version(
        model_id, bump=None, exact="1.0.0", manifest={}, lineage={}, published_by=admin
    )
    return version.id


def _status(platform: Platform, version_id: int) -> tuple[str, str | None]:
    with platform.sessions() as session:
        version = session.get(Version, version_id)
        assert version is not None
        return version.status, version.failure_code


def test_a_gateway_starting_beside_another_leaves_its_builds_alone(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = Platform.open(settings)
    second: Platform | None = None
    try:
        version_id = _building(first, "busy")
        second = Platform.open(settings)
        assert _status(second, version_id) == ("building", None)
        second.leases.renew_and_sweep()
        assert _status(second, version_id) == ("building", None)
        asyncio.run(first.aclose())  # stops cleanly: gives its lease up
        second.leases.renew_and_sweep()
        assert _status(second, version_id) == ("failed", "interrupted")
    finally:
        if second is not None:
            asyncio.run(second.aclose())


def test_a_stalled_gateway_loses_its_builds_once_its_lease_lapses(tmp_path: Path) -> None:
    stalled = Platform.open(Settings(data_dir=tmp_path / "data", gateway_lease_seconds=1))
    other: Platform | None = None
    try:
        version_id = _building(stalled, "stalled")
        other = Platform.open(Settings(data_dir=tmp_path / "data", gateway_lease_seconds=1))
        assert _status(other, version_id) == ("building", None)
        time.sleep(1.3)  # the stalled one renews nothing (no event loop runs its lease)
        other.leases.renew_and_sweep()
        assert _status(other, version_id) == ("failed", "interrupted")
        with other.sessions() as session:
            held = set(session.scalars(select(GatewayLease.instance)))
        assert held == {other.leases.instance}
        stalled.leases.renew_and_sweep()  # wakes up: takes a lease again
        with other.sessions() as session:
            held = set(session.scalars(select(GatewayLease.instance)))
        assert held == {other.leases.instance, stalled.leases.instance}
    finally:
        asyncio.run(stalled.aclose())
        if other is not None:
            asyncio.run(other.aclose())


_CRASH = """
import os, sys
from pathlib import Path
from algora.platform import Platform
from algora.settings import Settings
sys.path.insert(0, {tests!r})
from registry.test_leases import _building
platform = Platform.open(Settings(data_dir=Path({data!r})))
print(_building(platform, "crashed"), flush=True)
os._exit(9)  # as kill -9 would: no shutdown, the lease stays in the registry
"""


def test_a_gateway_restarted_after_a_crash_fails_its_builds_at_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    Platform.open(Settings(data_dir=data)).engine.dispose()  # the registry and its admin
    tests = str(Path(__file__).resolve().parents[1])
    crashed = subprocess.run(
        [sys.executable, "-c", _CRASH.format(tests=tests, data=str(data))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert crashed.returncode == 9, crashed.stderr
    version_id = int(crashed.stdout.split()[-1])
    restarted = Platform.open(Settings(data_dir=data))  # long lease: the process check decides
    try:
        assert _status(restarted, version_id) == ("failed", "interrupted")
    finally:
        asyncio.run(restarted.aclose())
