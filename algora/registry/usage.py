"""Usage for charge-back: calls, errors and compute seconds per day, key and model.

Every dispatched call is counted under the key it counts against (for a call made from inside a
model, the original caller's: see :func:`algora.auth.delegation.accountable`), that key's
principal and organization (:func:`algora.auth.principals.organization_of`) and the model.
Compute is the worker's CPU time for the call (a batch's shared evenly by its calls), as the
worker reports it; a call that got no answer counts none. Written like the statistics
(:mod:`algora.registry.accumulating`); :meth:`Usage.report` sums the rows a caller may read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from algora.auth.principals import Caller
from algora.db.shared_state import UsageDay
from algora.db.tables import Model, Principal
from algora.registry.accumulating import Accumulator, add_rows, additive_upsert

__all__ = ["By", "Usage", "UsageReport", "UsageRow", "day_of"]

By = Literal["org", "principal", "key", "model"]
_ADDED = ("calls", "errors", "compute_seconds")
_MANAGING_ROLES = ("owner", "admin")


def day_of(moment: float) -> datetime:
    """Midnight (UTC, naive) of the day that ``moment`` (seconds since the epoch) falls on."""
    return datetime.fromtimestamp(moment - moment % 86400, UTC).replace(tzinfo=None)


class _Tally:
    __slots__ = ("calls", "compute", "errors", "org_id", "principal_id")

    def __init__(self, principal_id: int, org_id: int | None) -> None:
        self.principal_id = principal_id
        self.org_id = org_id
        self.calls = 0
        self.errors = 0
        self.compute = 0.0

    def add(self, other: _Tally) -> None:
        self.calls += other.calls
        self.errors += other.errors
        self.compute += other.compute


_Key = tuple[int, str, int]
"""(day since the epoch, key id, model id)."""


@dataclass(frozen=True)
class UsageRow:
    group: str
    """The organization's, principal's or model's name, or the key's id; ``-`` for calls of
    no organization."""
    calls: int
    errors: int
    compute_seconds: float


@dataclass(frozen=True)
class UsageReport:
    by: By
    since: datetime
    until: datetime
    rows: tuple[UsageRow, ...]


class Usage(Accumulator[_Key, _Tally]):
    """Counts calls per day, key and model; writes them to ``usage_daily``."""

    what = "usage"

    def __init__(
        self, sessions: sessionmaker[Session], on_record: Callable[[Caller, float], None]
    ) -> None:
        super().__init__()
        self._sessions = sessions
        self._on_record = on_record
        """Told of every call (its accountable caller and compute): the quotas' counters."""

    def record(self, caller: Caller, model_id: int, failed: bool, compute: float) -> None:
        """Count one call of ``caller`` (already the accountable one). On the serving loop."""
        key = (int(time.time()) // 86400, caller.key_id, model_id)
        tally = self._pending.get(key)
        if tally is None:
            tally = self._pending[key] = _Tally(caller.principal_id, caller.org_id)
        tally.calls += 1
        tally.errors += failed
        tally.compute += compute
        self._on_record(caller, compute)

    def pending_of(self, matches: Callable[[str, int | None], bool]) -> tuple[int, float]:
        """The calls and compute counted here and not yet written, of the keys for which
        ``matches(key id, org id)`` holds (today's and earlier: a write is seconds away)."""
        calls, compute = 0, 0.0
        for (_day, key_id, _model), tally in self._pending.items():
            if matches(key_id, tally.org_id):
                calls += tally.calls
                compute += tally.compute
        return calls, compute

    def write(self, pending: dict[_Key, _Tally]) -> None:
        rows = [
            {
                "day": day_of(day * 86400.0),
                "key_id": key_id,
                "model_id": model_id,
                "principal_id": tally.principal_id,
                "org_id": tally.org_id,
                "calls": tally.calls,
                "errors": tally.errors,
                "compute_seconds": tally.compute,
            }
            for (day, key_id, model_id), tally in pending.items()
        ]
        with self._sessions() as session:
            if not add_rows(session, _upsert(session), rows):
                # a model that is gone: nothing left to count it under
                kept = _known(session, rows)
                if kept:
                    session.execute(_upsert(session), kept)
                    session.commit()

    def report(self, caller: Caller, by: By, since: datetime, until: datetime) -> UsageReport:
        """The usage ``caller`` may read from ``since`` to ``until`` (days that start in it),
        summed per ``by``, most calls first. An admin reads everyone's; others their own keys'
        and that of the organizations they own or administer."""
        with self._sessions() as session:
            org, owner = aliased(Principal), aliased(Principal)
            group: Any = {
                "org": func.coalesce(org.name, "-"),
                "principal": Principal.name,
                "key": UsageDay.key_id,
                "model": owner.name + "/" + Model.name,
            }[by]
            statement = (
                select(
                    group,
                    func.sum(UsageDay.calls),
                    func.sum(UsageDay.errors),
                    func.sum(UsageDay.compute_seconds),
                )
                .join(Principal, Principal.id == UsageDay.principal_id)
                .outerjoin(org, org.id == UsageDay.org_id)
                .join(Model, Model.id == UsageDay.model_id)
                .join(owner, owner.id == Model.owner_id)
                .where(UsageDay.day >= day_of(since.replace(tzinfo=UTC).timestamp()))
                .where(UsageDay.day < until)
                .group_by(group)
                .order_by(func.sum(UsageDay.calls).desc(), group)
            )
            if not caller.is_admin:
                managed = [o for o, role in caller.memberships if role in _MANAGING_ROLES]
                statement = statement.where(
                    or_(
                        UsageDay.principal_id == caller.principal_id,
                        UsageDay.org_id.in_(managed),
                    )
                )
            rows = tuple(
                UsageRow(str(name), int(calls), int(errors), round(float(compute), 6))
                for name, calls, errors, compute in session.execute(statement)
            )
        return UsageReport(by=by, since=since, until=until, rows=rows)


def _known(session: Session, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    models = {row["model_id"] for row in rows}
    present = set(session.scalars(select(Model.id).where(Model.id.in_(models))))
    return [row for row in rows if row["model_id"] in present]


def _upsert(session: Session) -> Any:
    return additive_upsert(session, UsageDay, ("day", "key_id", "model_id"), _ADDED)
