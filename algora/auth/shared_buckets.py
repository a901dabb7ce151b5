"""Token buckets in the registry: one bucket per key and scope for every gateway on it.

With several gateways behind a load balancer, buckets in each gateway's memory let a key make
its limit's worth of calls through each of them. Here a bucket is a row of ``rate_buckets``,
and a token is taken by one conditional ``UPDATE ... RETURNING`` that refills and takes in the
same statement, so two gateways taking at once cannot both take the last token (SQLite holds
the write lock for it; PostgreSQL re-checks the condition on the row it waited for). A call that
claims two buckets (its key's and its key's limit for the model) takes both in one transaction,
or neither.

Only a key that has a limit comes here (see :meth:`~algora.auth.ratelimit.RateLimiter.check`):
a key without one costs no round trip. Times are the gateways' wall clocks (seconds since the
epoch), so gateways must keep their clocks in step (NTP); a gateway whose clock is behind the
last stamp refills nothing until it catches up, which can only refuse, never over-admit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, and_, case, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.ratelimit import Limit
from algora.db.engine import every
from algora.db.shared_state import RateBucket

__all__ = ["DatabaseBuckets"]

logger = logging.getLogger(__name__)

_WEEK = 7 * 86400.0

_ATTEMPTS = 3
"""Takes of one bucket before giving up on a race (a row created or refilled meanwhile by
another gateway); each attempt is a statement, so this bounds the round trips."""


class DatabaseBuckets:
    """:class:`~algora.auth.ratelimit.Buckets` as rows of the registry's ``rate_buckets``."""

    def __init__(
        self, sessions: sessionmaker[Session], *, clock: Callable[[], float] = time.time
    ) -> None:
        self._sessions = sessions
        self._clock = clock

    def __len__(self) -> int:
        return 0  # none in memory: they are rows of the registry

    def prune(self) -> int:
        """Delete the buckets that are full again (a missing bucket is a full one), and those
        of before ``full_at`` was kept that nobody took from for a week; how many went."""
        now = self._clock()
        with self._sessions() as session:
            pruned = session.execute(
                delete(RateBucket).where(
                    or_(
                        RateBucket.full_at < now,
                        and_(RateBucket.full_at.is_(None), RateBucket.stamp < now - _WEEK),
                    )
                )
            )
            session.commit()
        return int(cast(CursorResult[Any], pruned).rowcount or 0)

    async def run_pruning(self, interval: float = 60.0) -> None:
        """Prune every ``interval`` seconds until cancelled (a failed round is retried)."""
        await every(interval, self.prune, logger, "could not prune the shared rate-limit buckets")

    def take(self, key_id: str, claims: Sequence[tuple[str, Limit]]) -> tuple[float, ...]:
        now = self._clock()
        with self._sessions() as session:
            waits = tuple(_take(session, key_id, scope, limit, now) for scope, limit in claims)
            if any(waits):
                session.rollback()  # all or none: give back what was taken
            else:
                session.commit()
        return waits


def _take(session: Session, key_id: str, scope: str, limit: Limit, now: float) -> float:
    """Take a token from one bucket in ``session``'s transaction: 0.0, or the wait in seconds
    until a token is there (nothing taken)."""
    where = (RateBucket.key_id == key_id, RateBucket.scope == scope)
    for _ in range(_ATTEMPTS):
        tokens = _refilled(limit, now)
        stamp = case((RateBucket.stamp < now, now), else_=RateBucket.stamp)
        taken = session.execute(
            update(RateBucket)
            .where(*where, tokens >= 1.0)
            .values(
                tokens=tokens - 1.0,
                stamp=stamp,
                full_at=stamp + (float(limit.burst) - (tokens - 1.0)) / limit.rate,
            )
            .returning(RateBucket.tokens)
        ).first()
        if taken is not None:
            return 0.0
        if _create(session, key_id, scope, float(limit.burst) - 1.0, now, now + 1.0 / limit.rate):
            return 0.0  # a new bucket is full: its first call takes one of its burst
        row = session.execute(select(RateBucket.tokens, RateBucket.stamp).where(*where)).first()
        if row is None:
            continue  # its creator rolled back meanwhile: take again
        tokens_now = float(row.tokens) + max(0.0, now - float(row.stamp)) * limit.rate
        have = min(float(limit.burst), tokens_now)
        if have < 1.0:
            return (1.0 - have) / limit.rate
        # Another gateway refilled it between the two statements: take again.
    return 1.0 / limit.rate


def _refilled(limit: Limit, now: float) -> ColumnElement[float]:
    """The bucket's tokens at ``now``, as SQL: what it had plus what the time since its
    stamp brought, up to the burst (CASE rather than LEAST/MAX, which SQLite spells MIN/MAX)."""
    elapsed = case((RateBucket.stamp < now, now - RateBucket.stamp), else_=0.0)
    grown = RateBucket.tokens + elapsed * limit.rate
    return case((grown > float(limit.burst), float(limit.burst)), else_=grown)


def _create(
    session: Session, key_id: str, scope: str, tokens: float, now: float, full_at: float
) -> bool:
    """Insert the bucket unless it exists; whether this call inserted it."""
    values = {"key_id": key_id, "scope": scope, "tokens": tokens, "stamp": now, "full_at": full_at}
    sqlite = session.get_bind().dialect.name == "sqlite"  # else PostgreSQL, the other registry
    statement = (sqlite_insert if sqlite else postgresql_insert)(RateBucket)
    # RETURNING, not the row count: drivers disagree on the count of a skipped insert
    # (psycopg says -1).
    inserted = statement.values(values).on_conflict_do_nothing().returning(RateBucket.key_id)
    return session.execute(inserted).first() is not None
