"""Building a Platform wires its parts; ``Platform.open`` does the start-up work."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import inspect, select

from algora.db.tables import Model, Principal, Version
from algora.platform import Platform
from algora.settings import Settings


def test_construction_does_no_start_up_work(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    platform = Platform(settings)
    try:
        assert inspect(platform.engine).get_table_names() == []
        assert not (tmp_path / "data" / "admin.key").exists()
        assert platform.new_admin_key is None
    finally:
        asyncio.run(platform.aclose())


def test_open_migrates_and_creates_the_admin_once(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = Platform.open(settings)
    try:
        assert "models" in inspect(first.engine).get_table_names()
        key = (tmp_path / "data" / "admin.key").read_text(encoding="utf-8").strip()
        assert first.new_admin_key == key
    finally:
        asyncio.run(first.aclose())
    again = Platform.open(settings)
    try:
        assert again.new_admin_key is None
        assert (tmp_path / "data" / "admin.key").read_text(encoding="utf-8").strip() == key
    finally:
        asyncio.run(again.aclose())


def test_open_fails_the_builds_a_stopped_server_left(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = Platform.open(settings)
    try:
        with first.sessions() as session:
            admin = session.scalars(select(Principal).where(Principal.name == "admin")).one()
            model = Model(owner_id=admin.id, name="stopped")
            session.add(model)
            session.flush()
            session.add(Version(model_id=model.id, major=1, minor=0, patch=0))
            session.commit()
    finally:
        asyncio.run(first.aclose())
    again = Platform(settings)
    try:
        with again.sessions() as session:
            assert session.scalars(select(Version.status)).one() == "building"
    finally:
        asyncio.run(again.aclose())
    opened = Platform.open(settings)
    try:
        with opened.sessions() as session:
            version = session.scalars(select(Version)).one()
            assert (version.status, version.failure_code) == ("failed", "interrupted")
    finally:
        asyncio.run(opened.aclose())
