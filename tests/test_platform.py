"""Building a Platform wires its parts; ``Platform.open`` does the start-up work."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import inspect

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
