"""API keys and their rate limits: who may create, list, revoke and limit whose keys.

A principal manages its own keys; an admin anyone's; a service account's keys are managed by
its owner, or by the admins and owners of the organization that owns it. Anyone else is told
the key (or principal) does not exist. A new key may only narrow the scopes of the key that
creates it. A key's rate limit, and its per-model limits, may be tightened by whoever manages
the key; only an admin may loosen one (or remove it). Nobody revokes the last active key that
lets an admin manage keys (:class:`~algora.errors.LastAdminKey`); whoever holds the data
directory issues a new one offline with :func:`reset_admin_key` (``algora admin reset-key``).

Each method opens its own session and returns frozen views; a change that a cached
:class:`Caller` would miss (a revocation, a limit) forgets the authenticator's cache.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Final, Literal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.bootstrap import ADMIN_KEY_FILE, create_key, write_private
from algora.auth.policy import can_manage_principal
from algora.auth.principals import Caller, organization_limit
from algora.auth.ratelimit import Limit
from algora.auth.scopes import covers, has_scope, validate_scopes
from algora.db.tables import ApiKey, KeyModelLimit, Principal, utcnow
from algora.errors import BadRequest, LastAdminKey, NotFound, PermissionDenied
from algora.settings import Settings

__all__ = [
    "KEEP",
    "MODEL_LIMIT_PATTERN",
    "KeyView",
    "Keyring",
    "LimitChange",
    "ModelLimitView",
    "NewKeyView",
    "RecoveredKey",
    "reset_admin_key",
]

MODEL_LIMIT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}/(?:[a-z0-9][a-z0-9_-]{0,63}|\*)\Z")
"""What a per-model limit names: ``owner/name``, or ``owner/*`` for all of an owner's models."""


class _Keep(Enum):
    KEEP = "keep"


KEEP: Final = _Keep.KEEP
"""A field of a :class:`LimitChange` that stays as it is."""


@dataclass(frozen=True)
class LimitChange:
    """A change of a rate limit: each field is a new value, None (removed) or KEEP."""

    rate_per_second: float | Literal[_Keep.KEEP] | None = KEEP
    burst: int | Literal[_Keep.KEEP] | None = KEEP

    def applied(self, rate: float | None, burst: int | None) -> tuple[float | None, int | None]:
        """The limit's two columns after this change."""
        return (
            rate if self.rate_per_second is KEEP else self.rate_per_second,
            burst if self.burst is KEEP else self.burst,
        )


@dataclass(frozen=True)
class KeyView:
    key_id: str
    name: str
    principal: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    last_used_address: str | None
    expires_at: datetime | None
    revoked: bool
    rate_per_second: float | None
    burst: int | None
    model_calls_only: bool


@dataclass(frozen=True)
class NewKeyView:
    key_id: str
    secret: str
    """Shown once; stored only as a hash."""
    principal: str
    scopes: tuple[str, ...]
    expires_at: datetime | None


@dataclass(frozen=True)
class ModelLimitView:
    """A key's limit for the models ``model`` names (``owner/name`` or ``owner/*``)."""

    model: str
    rate_per_second: float
    burst: int | None = None
    """None: one second's worth of calls."""


def _looser(new: Limit | None, current: Limit | None) -> bool:
    """True when ``new`` allows more than ``current`` (None: no limit at all)."""
    if current is None:
        return False
    return new is None or new.rate > current.rate or new.burst > current.burst


def _limit(rate: float | None, burst: int | None) -> Limit | None:
    try:
        return Limit.of(rate, burst)
    except ValueError as error:
        raise BadRequest(str(error)) from None


class Keyring:
    """Creates, lists, revokes and limits keys; each method opens its own session."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        *,
        forget_callers: Callable[[], None],
    ) -> None:
        self._sessions = sessions
        self._default = Limit.of(settings.default_rate_per_second, settings.default_burst)
        self._forget_callers = forget_callers
        # Two revocations of an admin's last two keys, each seeing the other key still active,
        # would lock every admin out: they take turns (and lock the admin keys' rows, for
        # gateways in other processes on PostgreSQL).
        self._revoking = threading.Lock()

    def list_keys(self, caller: Caller, principal: str | None = None) -> list[KeyView]:
        """The keys of ``principal`` (default: the caller's own)."""
        with self._sessions() as session:
            owner = self._principal_for_keys(session, caller, principal)
            keys = session.scalars(select(ApiKey).where(ApiKey.principal_id == owner.id)).all()
            return [_key_view(k) for k in keys]

    def create_key(
        self,
        caller: Caller,
        name: str = "",
        *,
        scopes: Sequence[str] | None = None,
        expires_in_days: int | None = None,
        model_calls_only: bool = False,
        principal: str | None = None,
    ) -> NewKeyView:
        """A new key for the caller or a principal whose keys it manages (``scopes`` default:
        the calling key's, which a new key may only narrow)."""
        wanted = list(caller.scopes) if scopes is None else validate_scopes(list(scopes))
        for scope in wanted:
            if not covers(caller.scopes, scope, is_admin=caller.is_admin):
                raise PermissionDenied(
                    f"this key cannot hand out the '{scope}' scope: a new key may only narrow "
                    "the scopes of the key that creates it"
                )
        expires_at = None
        if expires_in_days is not None:
            if expires_in_days < 1:
                raise BadRequest("a key expires at least one day after it is created")
            expires_at = utcnow() + timedelta(days=expires_in_days)
        with self._sessions() as session:
            owner = self._principal_for_keys(session, caller, principal)
            new = create_key(
                session,
                owner,
                name,
                scopes=wanted,
                expires_at=expires_at,
                model_calls_only=model_calls_only,
            )
            session.commit()
            return NewKeyView(new.key_id, new.secret, owner.name, tuple(wanted), expires_at)

    def revoke_key(self, caller: Caller, key_id: str) -> None:
        """Revoke a key, unless it is the last one with which an admin manages keys."""
        with self._revoking, self._sessions() as session:
            key = self._owned_key(session, caller, key_id)
            if (
                key.revoked_at is None
                and _manages_as_admin(key)
                and not _other_admin_keys(session, key)
            ):
                raise LastAdminKey(
                    f"key '{key_id}' is the last active key of the last admin, and revoking it "
                    "would lock every admin out: create another admin key first (or, on the "
                    "server, run 'algora admin reset-key --data-dir DIR')"
                )
            key.revoked_at = key.revoked_at or utcnow()
            session.commit()
        self._forget_callers()

    def limit_key(self, caller: Caller, key_id: str, change: LimitChange) -> KeyView:
        """Set a key's own rate limit: its managers may tighten it, only an admin loosen it."""
        with self._sessions() as session:
            key = self._owned_key(session, caller, key_id)
            rate, burst = change.applied(key.rate_per_second, key.burst)
            wanted = _limit(rate, burst)
            if not caller.is_admin:
                inherited = self._inherited(session, key.principal)
                current = Limit.of(key.rate_per_second, key.burst) or inherited
                if _looser(wanted or inherited, current):
                    raise PermissionDenied(
                        "only an admin may loosen a key's rate limit; you may tighten it"
                    )
            key.rate_per_second, key.burst = rate, burst
            session.commit()
            view = _key_view(key)
        self._forget_callers()
        return view

    def model_limits(self, caller: Caller, key_id: str) -> list[ModelLimitView]:
        with self._sessions() as session:
            return _model_limit_views(
                _model_limits(session, self._owned_key(session, caller, key_id))
            )

    def set_model_limits(
        self, caller: Caller, key_id: str, limits: Sequence[ModelLimitView]
    ) -> list[ModelLimitView]:
        """Replace a key's per-model limits; removing or loosening one is for admins only."""
        wanted: dict[str, Limit] = {}
        for entry in limits:
            if not MODEL_LIMIT_PATTERN.match(entry.model):
                raise BadRequest(f"'{entry.model}' is not 'owner/name' or 'owner/*'")
            if entry.model in wanted:
                raise BadRequest(f"'{entry.model}' is given twice")
            limit = _limit(entry.rate_per_second, entry.burst)
            if limit is None:
                raise BadRequest(f"the limit for '{entry.model}' needs a rate")
            wanted[entry.model] = limit
        with self._sessions() as session:
            key = self._owned_key(session, caller, key_id)
            rows = _model_limits(session, key)
            if not caller.is_admin:
                for row in rows:
                    if _looser(wanted.get(row.pattern), Limit.of(row.rate_per_second, row.burst)):
                        raise PermissionDenied(
                            f"only an admin may loosen or remove the limit for '{row.pattern}'"
                        )
            for row in rows:
                session.delete(row)
            session.flush()
            for entry in limits:
                session.add(
                    KeyModelLimit(
                        key_id=key.id,
                        pattern=entry.model,
                        rate_per_second=entry.rate_per_second,
                        burst=entry.burst,
                    )
                )
            session.commit()
            views = _model_limit_views(_model_limits(session, key))
        self._forget_callers()
        return views

    # helpers ------------------------------------------------------------------------------
    def _principal_for_keys(self, session: Session, caller: Caller, name: str | None) -> Principal:
        if name is None:
            principal = session.get(Principal, caller.principal_id)
        else:
            principal = session.scalars(select(Principal).where(Principal.name == name)).first()
        if principal is None or not can_manage_principal(caller, principal):
            raise NotFound(f"no principal '{name}' whose keys you manage")
        return principal

    def _owned_key(self, session: Session, caller: Caller, key_id: str) -> ApiKey:
        key = session.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).first()
        if key is None or not can_manage_principal(caller, key.principal):
            raise NotFound(f"no key '{key_id}'")
        return key

    def _inherited(self, session: Session, principal: Principal) -> Limit | None:
        """The limit a key without its own gets: its principal's, its organization's, or the
        server's default."""
        return (
            Limit.of(principal.rate_per_second, principal.burst)
            or organization_limit(session, principal)
            or self._default
        )


def _key_view(key: ApiKey) -> KeyView:
    return KeyView(
        key_id=key.key_id,
        name=key.name,
        principal=key.principal.name,
        scopes=tuple(str(s) for s in key.scopes),
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        last_used_address=key.last_used_address,
        expires_at=key.expires_at,
        revoked=key.revoked_at is not None,
        rate_per_second=key.rate_per_second,
        burst=key.burst,
        model_calls_only=key.model_calls_only,
    )


def _model_limits(session: Session, key: ApiKey) -> list[KeyModelLimit]:
    statement = select(KeyModelLimit).where(KeyModelLimit.key_id == key.id)
    return list(session.scalars(statement.order_by(KeyModelLimit.pattern)).all())


def _model_limit_views(rows: list[KeyModelLimit]) -> list[ModelLimitView]:
    return [ModelLimitView(r.pattern, r.rate_per_second, r.burst) for r in rows]


def _manages_as_admin(key: ApiKey) -> bool:
    """Whether a key lets an admin manage keys (so: recover everything else) while active."""
    if not key.principal.is_admin or key.model_calls_only:
        return False
    if key.expires_at is not None and key.expires_at <= utcnow():
        return False
    return has_scope([str(s) for s in key.scopes], "keys:manage", None, is_admin=True)


def _other_admin_keys(session: Session, key: ApiKey) -> bool:
    """Whether an admin holds another active key that manages keys. The admins' active keys,
    this one among them, are locked in one order until the transaction ends."""
    statement = (
        select(ApiKey)
        .join(Principal, ApiKey.principal_id == Principal.id)
        .where(
            Principal.is_admin.is_(True),
            ApiKey.revoked_at.is_(None),
            or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > utcnow()),
        )
        .order_by(ApiKey.id)
        .with_for_update(of=ApiKey)
    )
    return any(
        other.id != key.id and _manages_as_admin(other) for other in session.scalars(statement)
    )


@dataclass(frozen=True)
class RecoveredKey:
    """A key :func:`reset_admin_key` issued; its secret is shown once and kept in ``path``."""

    principal: str
    principal_id: int
    key_id: str
    secret: str
    path: Path


def reset_admin_key(
    sessions: sessionmaker[Session], data_dir: Path, user: str | None = None
) -> RecoveredKey:
    """Offline recovery: a new full key for an admin (``user``, else the first admin), written
    to ``data_dir/admin.key`` (mode 0600). Other keys stay as they are. No caller: whoever may
    read and write the data directory already holds everything this key opens."""
    with sessions() as session:
        admins = select(Principal).where(Principal.is_admin.is_(True), Principal.kind == "user")
        if user is not None:
            admins = admins.where(Principal.name == user)
        admin = session.scalars(admins.order_by(Principal.id)).first()
        if admin is None:
            raise NotFound(
                f"'{user}' is not an admin of this server"
                if user is not None
                else "this registry has no admin yet: 'algora serve' creates one on first start"
            )
        new = create_key(session, admin, "admin (reset with 'algora admin reset-key')")
        session.commit()
        recovered = RecoveredKey(
            admin.name, admin.id, new.key_id, new.secret, data_dir / ADMIN_KEY_FILE
        )
    write_private(recovered.path, new.secret + "\n")
    return recovered
