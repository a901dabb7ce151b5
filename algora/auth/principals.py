"""Who is calling: key lookup with a short cache, so the hot path rarely touches the database.

The cached :class:`Caller` also carries the key's resolved rate limits, so that a change of
limit takes effect everywhere within the cache's few seconds (at once on the gateway that made
it, which forgets its cache).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.keys import hash_key, keys_match, parse_authorization
from algora.auth.ratelimit import UNLIMITED, KeyLimits, Limit, ModelLimit
from algora.db.tables import ApiKey, KeyModelLimit, Principal, utcnow
from algora.errors import Unauthenticated

__all__ = [
    "Authenticator",
    "Caller",
    "Delegation",
    "caller_of",
    "organization_limit",
    "resolve_limits",
]

_CACHE_SECONDS = 5.0
_STALE_SECONDS = 5.0
"""How long past its expiry a cached key still answers while one request reloads it: when a
busy key's entry expires, one request reads the database, not every request then in flight
(each of which also wrote the key's last use). A revocation on this gateway forgets at once."""


@dataclass(frozen=True)
class Delegation:
    """What a credential held by model code acts for (see ``algora.auth.delegation``)."""

    bounds: tuple[Caller, ...]
    """Principals whose rights all bound the credential: the original caller first, then the
    owner of each model the call went through. Empty: no principal's rights at all (a model
    loading, which has only the rights of the model itself)."""
    model: str
    """``owner/name`` of the model whose code holds the credential."""
    model_owner_id: int
    request_id: str | None = None
    """The call the model is serving (the parent of what it does); None while it loads."""
    session: str | None = None
    """The call tree's scratch space (``data://.session``); None while it loads."""
    deadline: float | None = None
    """``time.monotonic()`` when the call runs out of time; None while it loads."""


@dataclass(frozen=True)
class Caller:
    principal_id: int
    name: str
    is_admin: bool
    key_id: str
    scopes: tuple[str, ...] = field(default=())
    limits: KeyLimits = field(default=UNLIMITED)
    memberships: tuple[tuple[int, str], ...] = field(default=())
    """(organization id, role) for every organization the principal belongs to."""
    model_calls_only: bool = False
    """The key may be used only by calls made from inside models (see ``gateway.deps``)."""
    kind: str = "user"
    org_id: int | None = None
    """The organization the key's calls are counted under (see :func:`organization_of`)."""
    delegation: Delegation | None = None
    """Set on the credential that model code holds (``algora.auth.delegation``): its rights are
    the intersection of the principals it names, and it says which model and call it serves."""

    def role_in(self, org_id: int) -> str | None:
        """The principal's role in an organization, or None when it is not a member."""
        for org, role in self.memberships:
            if org == org_id:
                return role
        return None


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Caller`, or raises Unauthenticated."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._cache: dict[str, tuple[float, Caller]] = {}
        self._reloading: set[str] = set()
        """Digests of the keys a request is reloading from the database right now."""
        self._lock = threading.Lock()

    def cached(self, authorization: str | None) -> Caller | None:
        """The caller for a recently seen key, without touching the database."""
        secret = parse_authorization(authorization)
        if secret is None:
            return None
        with self._lock:
            return self._fresh(hash_key(secret), time.monotonic())

    def authenticate(self, authorization: str | None, address: str | None = None) -> Caller:
        """The caller a key names; ``address`` (the peer) is recorded as the key's last use."""
        secret = parse_authorization(authorization)
        if secret is None:
            raise Unauthenticated(
                "an API key is required: send 'Authorization: Simple YOUR_KEY' "
                "(create keys with 'algora keys create')"
            )
        digest = hash_key(secret)
        with self._lock:
            found = self._fresh(digest, time.monotonic())
            if found is not None:
                return found
            self._reloading.add(digest)
        try:
            caller = self._load(digest, secret, address)
        except Unauthenticated:
            with self._lock:
                self._cache.pop(digest, None)  # revoked elsewhere: no stale answers either
            raise
        finally:
            with self._lock:
                self._reloading.discard(digest)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (time.monotonic() + _CACHE_SECONDS, caller)
        return caller

    def _fresh(self, digest: str, now: float) -> Caller | None:
        """The cached caller if its entry is current, or expired by less than
        :data:`_STALE_SECONDS` while another request reloads it; else None. Under the lock."""
        entry = self._cache.get(digest)
        if entry is None:
            return None
        expires, caller = entry
        if expires > now or (now < expires + _STALE_SECONDS and digest in self._reloading):
            return caller
        return None

    def forget(self) -> None:
        """Drop cached keys (after a revocation)."""
        with self._lock:
            self._cache.clear()

    def _load(self, digest: str, secret: str, address: str | None) -> Caller:
        with self._sessions() as session:
            key = session.scalars(select(ApiKey).where(ApiKey.key_hash == digest)).first()
            now = utcnow()
            if (
                key is None
                or not keys_match(key.key_hash, secret)
                or key.revoked_at is not None
                or (key.expires_at is not None and key.expires_at <= now)
            ):
                raise Unauthenticated("the API key is unknown, revoked or expired")
            key.last_used_at = now
            key.last_used_address = address[:64] if address else None
            caller = caller_of(session, key)
            session.commit()
            return caller


def caller_of(session: Session, key: ApiKey) -> Caller:
    """The caller a key (known to be valid) makes: its principal, scopes and limits."""
    return Caller(
        principal_id=key.principal_id,
        name=key.principal.name,
        is_admin=key.principal.is_admin,
        key_id=key.key_id,
        scopes=tuple(str(s) for s in key.scopes),
        limits=resolve_limits(session, key),
        memberships=tuple((m.org_id, m.role) for m in key.principal.memberships),
        model_calls_only=key.model_calls_only,
        kind=key.principal.kind,
        org_id=organization_of(session, key.principal),
    )


def organization_of(session: Session, principal: Principal) -> int | None:
    """The one organization a principal's usage and quotas count under: a service account's
    owner when that is an organization, else the first organization (by id) it is a member
    of; None for a user in none."""
    if principal.kind == "service" and principal.owner_id is not None:
        owner = session.get(Principal, principal.owner_id)
        if owner is not None and owner.kind == "org":
            return owner.id
    return min((m.org_id for m in principal.memberships), default=None)


def resolve_limits(session: Session, key: ApiKey) -> KeyLimits:
    """The key's limits: its own, else its principal's default, else its organization's; and
    its per-model limits. None left means the server's default applies."""
    own = (
        Limit.of(key.rate_per_second, key.burst)
        or Limit.of(key.principal.rate_per_second, key.principal.burst)
        or organization_limit(session, key.principal)
    )
    rows = session.scalars(select(KeyModelLimit).where(KeyModelLimit.key_id == key.id)).all()
    models = tuple(
        ModelLimit(row.pattern, limit)
        for row in rows
        if (limit := Limit.of(row.rate_per_second, row.burst)) is not None
    )
    return KeyLimits(key=own, models=models) if own or models else UNLIMITED


def organization_limit(session: Session, principal: Principal) -> Limit | None:
    """The default limit of an organization the principal belongs to (the first, by
    organization id, that sets one); for a service account, also its owner's."""
    org_ids = sorted(m.org_id for m in principal.memberships)
    if principal.kind == "service" and principal.owner_id is not None:
        org_ids.append(principal.owner_id)
    for org_id in org_ids:
        org = session.get(Principal, org_id)
        if org is not None and (limit := Limit.of(org.rate_per_second, org.burst)) is not None:
            return limit
    return None
