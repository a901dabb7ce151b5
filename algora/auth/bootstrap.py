"""First start: the admin principal and its key, written once to ``admin.key`` (mode 0600)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.keys import NewKey, generate_key
from algora.db.tables import ApiKey, Principal

__all__ = ["ADMIN_NAME", "create_key", "ensure_admin", "write_private"]

ADMIN_NAME = "admin"
ADMIN_KEY_FILE = "admin.key"


def create_key(
    session: Session,
    principal: Principal,
    name: str,
    *,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
    model_calls_only: bool = False,
) -> NewKey:
    """Add a key for the principal (``scopes`` default: ``["*"]``); its secret is returned once."""
    new = generate_key()
    session.add(
        ApiKey(
            key_id=new.key_id,
            key_hash=new.key_hash,
            principal_id=principal.id,
            name=name,
            scopes=["*"] if scopes is None else scopes,
            expires_at=expires_at,
            model_calls_only=model_calls_only,
        )
    )
    return new


def ensure_admin(sessions: sessionmaker[Session], data_dir: Path) -> str | None:
    """Create the admin and its key on first start; return the new key, or None if it existed."""
    with sessions() as session:
        admin = session.scalars(select(Principal).where(Principal.name == ADMIN_NAME)).first()
        if admin is not None:
            return None
        admin = Principal(name=ADMIN_NAME, kind="user", is_admin=True)
        session.add(admin)
        session.flush()
        new = create_key(session, admin, "admin (created at first start)")
        session.commit()
    write_private(data_dir / ADMIN_KEY_FILE, new.secret + "\n")
    return new.secret


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, readable by its owner only (never briefly by others)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a stale partial file keeps its mode through O_CREAT
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    partial.replace(path)
