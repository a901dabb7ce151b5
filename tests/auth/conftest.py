"""The account services over a real SQLite registry, with callers from the real authenticator."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.accounts import Accounts
from algora.auth.bootstrap import ensure_admin
from algora.auth.keyring import Keyring
from algora.auth.principals import Authenticator, Caller
from algora.db.engine import create_registry_engine, make_session_factory
from algora.db.migrate import upgrade
from algora.db.tables import Model, Principal
from algora.registry.service import Registry
from algora.settings import Settings


@dataclass
class World:
    """The services, the admin's key, and which caches they asked to forget."""

    accounts: Accounts
    keyring: Keyring
    authenticator: Authenticator
    sessions: sessionmaker[Session]
    admin_key: str
    forgotten: list[str] = field(default_factory=list)

    def caller(self, secret: str) -> Caller:
        return self.authenticator.authenticate(f"Simple {secret}")

    @property
    def admin(self) -> Caller:
        return self.caller(self.admin_key)

    def user(self, name: str) -> tuple[Caller, str]:
        """A new user (made by the admin) as a caller, and its first key's secret."""
        new = self.accounts.create_user_with_key(self.admin, name)
        return self.caller(new.secret), new.secret

    def model(self, owner: str, name: str) -> None:
        """A model row, as publishing would leave it (grants need one to point at)."""
        with self.sessions() as session:
            found = session.scalars(select(Principal).where(Principal.name == owner)).one()
            session.add(Model(owner_id=found.id, name=name))
            session.commit()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    engine = create_registry_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    upgrade(engine)
    sessions = make_session_factory(engine)
    authenticator = Authenticator(sessions)
    forgotten: list[str] = []

    def forget_callers() -> None:
        forgotten.append("callers")
        authenticator.forget()

    accounts = Accounts(
        sessions,
        Registry(sessions),
        forget_callers=forget_callers,
        forget_rights=lambda: forgotten.append("rights"),
    )
    keyring = Keyring(sessions, Settings(data_dir=tmp_path / "data"), forget_callers=forget_callers)
    admin_key = ensure_admin(sessions, tmp_path)
    assert admin_key is not None
    yield World(accounts, keyring, authenticator, sessions, admin_key, forgotten)
    engine.dispose()
