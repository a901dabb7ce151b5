"""Database engine: SQLite in WAL mode by default, PostgreSQL for teams."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["create_registry_engine", "every", "make_session_factory", "ping"]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_registry_engine(url: str) -> Engine:
    """Create the engine; for SQLite, create the file owner-only and enable WAL."""
    if url.startswith("sqlite"):
        path = make_url(url).database  # decoded, as the driver will open it
        if path and path != ":memory:":
            db_path = Path(path)
            db_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not db_path.exists():
                db_path.touch(mode=0o600)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def ping(engine: Engine) -> None:
    """Raise if the database cannot answer a trivial query."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


async def every(
    interval: float, work: Callable[[], object], logger: logging.Logger, failure: str
) -> None:
    """Run ``work`` (blocking registry work) in a thread every ``interval`` seconds until
    cancelled; a failed round is logged to ``logger`` as ``failure`` and tried again the next
    (the registry may be briefly unreachable)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(work)
        except Exception:
            logger.exception(failure)
