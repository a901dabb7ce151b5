"""Quotas: a budget of calls or compute seconds per day or month (UTC) for an organization's
keys or for one key; a call past it is refused with 429 ``quota_exceeded``, naming the quota and
when it resets.

Checking a call reads only memory: every few seconds :meth:`Quotas.run` writes the usage counted
here (:class:`~algora.registry.usage.Usage`), then reloads the quotas and what each has used so
far from the registry (every gateway's usage), plus what this gateway counted since. Between
reloads each call counted here adds to the quotas it falls under at once, so a gateway alone
stops at the budget; several gateways together may overshoot it by what the others admitted in
the last few seconds. A call's compute is known only once it has answered, so calls in flight
when a compute budget runs out still complete.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.principals import Caller
from algora.db.shared_state import UsageDay
from algora.db.tables import ApiKey, Principal, Quota
from algora.errors import BadRequest, NotFound, PermissionDenied, QuotaExceeded
from algora.registry.accumulating import FLUSH_SECONDS
from algora.registry.usage import Usage

__all__ = ["Metric", "Period", "QuotaView", "Quotas", "SubjectKind"]

logger = logging.getLogger(__name__)

Metric = Literal["calls", "compute_seconds"]
Period = Literal["day", "month"]
SubjectKind = Literal["org", "key"]


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    """The start and end (naive UTC) of the ``day`` or ``month`` that holds ``now``."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day, day + timedelta(days=1)
    start = day.replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class QuotaView:
    id: int
    org: str | None
    """The organization whose keys share the budget; or None for a key's own."""
    key_id: str | None
    metric: str
    period: str
    limit: float
    used: float
    """In the current period, as this gateway last counted it."""
    resets_at: datetime


@dataclass
class _Active:
    """A quota as checked on the serving loop, with what it has used this period."""

    view: QuotaView
    org_id: int | None
    used: float = 0.0
    starts: datetime = field(default_factory=_now)
    resets: datetime = field(default_factory=_now)

    def covers(self, caller: Caller) -> bool:
        return self.matches(caller.key_id, caller.org_id)

    def matches(self, key_id: str, org_id: int | None) -> bool:
        if self.org_id is not None:
            return org_id == self.org_id
        return key_id == self.view.key_id

    def roll(self, now: datetime) -> None:
        if now >= self.resets:
            self.starts, self.resets = period_bounds(self.view.period, now)
            self.used = 0.0


class Quotas:
    """Manages quotas (admins) and checks calls against them."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._active: tuple[_Active, ...] = ()

    # on the call path ----------------------------------------------------------------------
    def check(self, caller: Caller) -> None:
        """Raise :class:`QuotaExceeded` when a quota ``caller`` (the accountable caller) falls
        under is spent. Memory only."""
        if not self._active:
            return
        now = _now()
        for quota in self._active:
            if not quota.covers(caller):
                continue
            quota.roll(now)
            if quota.used >= quota.view.limit:
                raise _refusal(quota, now)

    def count(self, caller: Caller, compute: float) -> None:
        """Add one call (and its compute) to the quotas it falls under. Memory only."""
        for quota in self._active:
            if quota.covers(caller):
                quota.used += 1 if quota.view.metric == "calls" else compute

    async def run(self, usage: Usage, every: float = FLUSH_SECONDS) -> None:
        """Write ``usage`` and reload the quotas every ``every`` seconds, until cancelled."""
        while True:
            try:
                await self.reload(usage)
            except Exception:  # the registry may be briefly unreachable: keep the last state
                logger.warning("could not reload the quotas; will retry", exc_info=True)
            await asyncio.sleep(every)
            await usage.flush()

    async def reload(self, usage: Usage) -> None:
        """Read the quotas and what each used this period; add what ``usage`` holds unwritten."""
        loaded = await asyncio.to_thread(self._load)
        for quota in loaded:
            calls, compute = usage.pending_of(quota.matches)
            quota.used += calls if quota.view.metric == "calls" else compute
        self._active = tuple(loaded)

    def _load(self) -> list[_Active]:
        now = _now()
        loaded = []
        with self._sessions() as session:
            for row in session.scalars(select(Quota).order_by(Quota.id)):
                starts, resets = period_bounds(row.period, now)
                view = _view(session, row, 0.0, resets)
                active = _Active(view, _org_id(row.subject), starts=starts, resets=resets)
                column = UsageDay.calls if row.metric == "calls" else UsageDay.compute_seconds
                where = (
                    UsageDay.org_id == active.org_id
                    if active.org_id is not None
                    else UsageDay.key_id == view.key_id
                )
                used = session.scalar(
                    select(func.coalesce(func.sum(column), 0)).where(where, UsageDay.day >= starts)
                )
                active.used = float(used or 0)
                loaded.append(active)
        return loaded

    # management ----------------------------------------------------------------------------
    def list(self, caller: Caller) -> list[QuotaView]:
        """The quotas ``caller`` may see: an admin all; others those of their own keys and of
        their organizations, with what each used as this gateway counts it."""
        now = _now()
        views = []
        for quota in self._active:
            quota.roll(now)
            if caller.is_admin or self._concerns(caller, quota):
                views.append(_with_used(quota))
        return views

    def _concerns(self, caller: Caller, quota: _Active) -> bool:
        if quota.org_id is not None:
            return any(org == quota.org_id for org, _role in caller.memberships)
        with self._sessions() as session:
            owner = session.scalar(
                select(ApiKey.principal_id).where(ApiKey.key_id == quota.view.key_id)
            )
        return owner == caller.principal_id

    def set(
        self,
        caller: Caller,
        kind: SubjectKind,
        subject: str,
        metric: Metric,
        period: Period,
        limit: float,
    ) -> QuotaView:
        """Create or change the quota of an organization (``kind`` ``org``) or a key (``key``,
        by its id) for ``metric`` per ``period`` (admins only). Call :meth:`reload` after it
        to apply it here at once."""
        _require_admin(caller)
        if not limit > 0:
            raise BadRequest("a quota's limit must be greater than 0")
        org, key_id = (subject, None) if kind == "org" else (None, subject)
        with self._sessions() as session:
            subject = _subject(session, org, key_id)
            row = session.scalars(
                select(Quota).where(
                    Quota.subject == subject, Quota.metric == metric, Quota.period == period
                )
            ).first()
            if row is None:
                row = Quota(
                    subject=subject,
                    metric=metric,
                    period=period,
                    amount=limit,
                    created_by=caller.principal_id,
                )
                session.add(row)
            row.amount = limit
            try:
                session.commit()
            except IntegrityError:  # another admin set it at the same moment: theirs stands
                raise BadRequest("that quota was changed meanwhile: set it again") from None
            return _view(session, row, 0.0, period_bounds(period, _now())[1])

    def delete(self, caller: Caller, quota_id: int) -> None:
        """Remove a quota (admins only); call :meth:`reload` after it."""
        _require_admin(caller)
        with self._sessions() as session:
            row = session.get(Quota, quota_id)
            if row is None:
                raise NotFound(
                    f"quota #{quota_id} does not exist: list them with 'algora quota list'"
                )
            session.delete(row)
            session.commit()


def _require_admin(caller: Caller) -> None:
    if not caller.is_admin:
        raise PermissionDenied("only an admin may set or remove quotas")


def _subject(session: Session, org: str | None, key_id: str | None) -> str:
    if org is not None:
        found = session.scalars(
            select(Principal).where(Principal.name == org, Principal.kind == "org")
        ).first()
        if found is None:
            raise NotFound(
                f"organization '{org}' does not exist: list them with 'algora orgs list'"
            )
        return f"org:{found.id}"
    if session.scalars(select(ApiKey.id).where(ApiKey.key_id == key_id)).first() is None:
        raise NotFound(f"key '{key_id}' does not exist: list keys with 'algora keys list'")
    return f"key:{key_id}"


def _org_id(subject: str) -> int | None:
    kind, _, value = subject.partition(":")
    return int(value) if kind == "org" else None


def _view(session: Session, row: Quota, used: float, resets_at: datetime) -> QuotaView:
    kind, _, value = row.subject.partition(":")
    found = session.get(Principal, int(value)) if kind == "org" else None
    org = found.name if found is not None else None
    return QuotaView(
        id=row.id,
        org=org,
        key_id=value if kind == "key" else None,
        metric=row.metric,
        period=row.period,
        limit=row.amount,
        used=used,
        resets_at=resets_at,
    )


def _with_used(quota: _Active) -> QuotaView:
    return replace(quota.view, used=round(quota.used, 6), resets_at=quota.resets)


def _refusal(quota: _Active, now: datetime) -> QuotaExceeded:
    view = quota.view
    subject = f"organization '{view.org}'" if view.org else f"key '{view.key_id}'"
    unit = "calls" if view.metric == "calls" else "compute seconds"
    wait = (quota.resets - now).total_seconds()
    return QuotaExceeded(
        f"the quota of {subject} ({view.limit:g} {unit} per {view.period}) is spent: it resets "
        f"at {quota.resets.isoformat()}Z; ask an admin to raise it",
        details={
            "quota": view.id,
            "subject": view.org or view.key_id,
            "metric": view.metric,
            "period": view.period,
            "limit": view.limit,
            "used": round(quota.used, 6),
            "resets_at": quota.resets.isoformat() + "Z",
            "retry_after": round(wait, 3),
        },
    )
