"""Web UI sessions: an API key exchanged once for a session token that a cookie carries.

A session acts with the rights of the key it was opened with, checked again on every request:
revoking the key, or its expiry, ends the session too. The token is 256 random bits shown only
to the browser; the database holds its SHA-256. Sessions end after :data:`SESSION_LIFETIME`,
or when their holder signs out (the row is deleted, so a copied cookie is worthless).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.principals import Authenticator, Caller, caller_of
from algora.db.shared_state import WebSession
from algora.db.tables import ApiKey, utcnow
from algora.errors import PermissionDenied, Unauthenticated

__all__ = ["SESSION_LIFETIME", "NewSession", "WebSessions", "csrf_token"]

SESSION_LIFETIME = timedelta(hours=8)
"""A working day: after it, the browser signs in again."""


@dataclass(frozen=True)
class NewSession:
    token: str
    """The secret the cookie carries; never stored."""
    caller: Caller
    expires_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(token: str) -> str:
    """The CSRF token of the session whose secret is ``token``: derived, so never stored, and
    useless without the cookie that a page of another origin cannot read."""
    return hmac.new(token.encode(), b"algora-web-csrf", hashlib.sha256).hexdigest()


class WebSessions:
    """Opens, checks and ends web sessions; each method opens its own short session."""

    def __init__(self, sessions: sessionmaker[Session], authenticator: Authenticator) -> None:
        self._sessions = sessions
        self._authenticator = authenticator

    def sign_in(self, key: str, address: str | None = None) -> NewSession:
        """A new session for the holder of API key ``key`` (refused: Unauthenticated)."""
        caller = self._authenticator.authenticate(f"Simple {key.strip()}", address)
        if caller.model_calls_only:
            raise PermissionDenied(
                f"key '{caller.key_id}' may only be used by calls made from inside models: "
                "sign in with one of your own keys"
            )
        token = secrets.token_urlsafe(32)
        now = utcnow()
        expires_at = now + SESSION_LIFETIME
        with self._sessions() as session:
            session.execute(delete(WebSession).where(WebSession.expires_at <= now))
            key_row = session.scalars(select(ApiKey).where(ApiKey.key_id == caller.key_id)).one()
            session.add(
                WebSession(
                    token_hash=_digest(token),
                    api_key_id=key_row.id,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
            session.commit()
        return NewSession(token, caller, expires_at)

    def caller(self, token: str) -> Caller:
        """Who the session acts for, with its key's current rights; Unauthenticated when the
        session is unknown, ended or expired, or its key revoked or expired."""
        now = utcnow()
        with self._sessions() as session:
            row = session.scalars(
                select(WebSession).where(WebSession.token_hash == _digest(token))
            ).first()
            if row is None or row.expires_at <= now:
                raise Unauthenticated("your session has ended: sign in again")
            key = row.api_key
            if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
                raise Unauthenticated("the key this session was opened with is revoked or expired")
            return caller_of(session, key)

    def sign_out(self, token: str) -> None:
        """End the session on the server (nothing happens for one that has ended already)."""
        with self._sessions() as session:
            session.execute(delete(WebSession).where(WebSession.token_hash == _digest(token)))
            session.commit()
