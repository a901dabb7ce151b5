"""Bring the registry schema to the newest migration, one gateway at a time."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

__all__ = ["startup_lock", "upgrade"]

_STARTUP_LOCK = 0x616C676F72610001
"""PostgreSQL advisory lock key of the start-up work (any constant every gateway shares)."""

_MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


@contextlib.contextmanager
def startup_lock(engine: Engine, data_dir: Path) -> Iterator[None]:
    """Held while a gateway does its start-up work (migrations, the first admin), so that
    gateways starting at once on one registry take turns instead of racing: a session-level
    advisory lock on PostgreSQL (gateways on any machine), a file lock in the data folder on
    SQLite (whose gateways share that folder). A crashed holder releases it with its process."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _STARTUP_LOCK})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _STARTUP_LOCK})
        return
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(data_dir / ".startup.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
