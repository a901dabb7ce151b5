"""What the registry's tests share: a fresh, migrated registry database and a model in it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from algora.db.engine import create_registry_engine, make_session_factory
from algora.db.migrate import upgrade
from algora.db.tables import Model, Principal


@contextmanager
def migrated(url: str | None, folder: Path) -> Iterator[sessionmaker[Session]]:
    """Sessions of a migrated registry: ``url``'s database, or SQLite in ``folder`` for None."""
    engine = create_registry_engine(url or f"sqlite:///{folder / 'registry.db'}")
    upgrade(engine)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def owned_model(session: Session, owner: str, name: str) -> tuple[Principal, Model]:
    """A new principal ``owner`` and its model ``name`` (flushed, not committed)."""
    principal = Principal(name=owner)
    session.add(principal)
    session.flush()
    model = Model(owner_id=principal.id, name=name)
    session.add(model)
    session.flush()
    return principal, model
