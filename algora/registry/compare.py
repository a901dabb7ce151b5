"""The comparison report of an alias: its primary (the version that takes most of its calls)
beside each canary (another version of its split) and its shadow, over a window, so that a
promotion is made on evidence.

Latency (p50/p95/p99) and errors are each version's over all its calls in the window (the
per-minute statistics, :mod:`algora.registry.stats`); accuracy is from the feedback on the
calls made through the alias (:mod:`algora.registry.feedback`); agreement is the share of the
calls answered by both the primary and the shadow whose predictions match (the ``label`` or
``prediction`` field of an object, else the whole output). A canary never answers the same call
as the primary, so its agreement is n/a (None). Agreement and accuracy need call records:
versions published with ``[monitoring] feedback = true``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import and_, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from algora.auth.principals import Caller
from algora.db.tables import Alias, CallRecord
from algora.errors import AliasNotFound, InvalidInput
from algora.registry.quality import quality, quality_sums, summed
from algora.registry.routing import target_rows
from algora.registry.scoring import NO_PREDICTION, prediction, same
from algora.registry.service import Registry
from algora.registry.stats import Statistics, StatsPoint

__all__ = ["Comparison", "Comparisons", "Role", "Side", "agree"]

Role = Literal["primary", "canary", "shadow"]


@dataclass(frozen=True)
class Side:
    version: str
    role: Role
    weight: int | None
    """The version's share of the alias's calls, in percent; None for the shadow."""
    calls: int
    errors: int
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    scored: int
    accuracy: float | None
    mean_abs_error: float | None
    compared: int
    """Calls that both the primary and this side answered with a recorded output."""
    agreement: float | None
    """The share of ``compared`` whose predictions match; None when n/a (a canary) or none."""


@dataclass(frozen=True)
class Comparison:
    model: str
    alias: str
    since: datetime
    until: datetime
    primary: Side
    others: tuple[Side, ...]
    """The canaries, then the shadow."""


def agree(first: str, second: str) -> bool:
    """Whether two recorded outputs (JSON text) predict the same."""
    a, b = prediction(json.loads(first), "label"), prediction(json.loads(second), "label")
    if a is NO_PREDICTION or b is NO_PREDICTION:
        return first == second
    return same(a, b)


def _step(width: timedelta) -> str:
    if width <= timedelta(minutes=1500):
        return "1m"
    return "1h" if width <= timedelta(hours=1500) else "1d"


@dataclass(frozen=True)
class Comparisons:
    """Builds comparison reports; each call opens its own session."""

    sessions: sessionmaker[Session]
    registry: Registry
    statistics: Statistics

    def compare(
        self,
        caller: Caller,
        owner: str,
        name: str,
        alias: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Comparison:
        """The report of ``alias`` from ``since`` (default: an hour before ``until``) to
        ``until`` (default: now). The caller must be able to read the model; an unknown alias
        is a 404, an alias with one version and no shadow a 400."""
        until = until or datetime.now(UTC).replace(tzinfo=None)
        since = since or until - timedelta(hours=1)
        if since >= until:
            raise InvalidInput("since must come before until: widen the window")
        with self.sessions() as session:
            model = self.registry.require_model(session, caller, owner, name, "read")
            row = session.scalars(
                select(Alias).where(Alias.model_id == model.id, Alias.name == alias)
            ).first()
            if row is None:
                raise AliasNotFound(
                    f"'{owner}/{name}' has no alias '{alias[:40]}': "
                    f"`algora alias list {owner}/{name}` lists them"
                )
            targets = target_rows(session, row)
            if not targets:
                raise InvalidInput(
                    f"alias '{alias}' sends every call to {row.version.semver}, with no canary "
                    "or shadow: there is nothing to compare; give it a split or a shadow "
                    "(`algora alias set`)"
                )
            scores, _ = quality_sums(
                session, model.id, since, until, lambda _moment: since, alias=alias
            )
            agreement = self._agreement(session, model.id, alias, since, until)
            primary_id = row.version_id
            total = sum(target.weight for target, _ in targets if not target.shadow)
            sides: list[tuple[int, str, Role, int | None]] = [
                (primary_id, row.version.semver, "primary", 100 if not total else None)
            ]
            for target, version in targets:
                if target.shadow:
                    sides.append((version.id, version.semver, "shadow", None))
                else:
                    share = round(100 * target.weight / total)
                    if version.id == primary_id:
                        sides[0] = (primary_id, version.semver, "primary", share)
                    else:
                        sides.append((version.id, version.semver, "canary", share))
        sides.sort(key=lambda side: ("primary", "canary", "shadow").index(side[2]))
        series = self.statistics.series(
            caller, owner, name, since=since, until=until, step=_step(until - since)
        )
        totals = {stats.version: stats.total for stats in series.versions}
        built = [
            _side(
                semver,
                role,
                weight,
                totals.get(semver),
                summed(scores.get(version_id, {})),
                agreement.get(version_id, (0, 0)) if role == "shadow" else None,
            )
            for version_id, semver, role, weight in sides
        ]
        return Comparison(
            model=f"{owner}/{name}",
            alias=alias,
            since=since,
            until=until,
            primary=built[0],
            others=tuple(built[1:]),
        )

    def _agreement(
        self, session: Session, model_id: int, alias: str, since: datetime, until: datetime
    ) -> dict[int, tuple[int, int]]:
        """The shadow's version id -> (calls compared, calls agreed)."""
        copy = aliased(CallRecord)
        pairs = session.execute(
            select(CallRecord.output, copy.output, copy.version_id)
            .join(copy, and_(copy.request_id == CallRecord.request_id, copy.shadow.is_(True)))
            .where(
                CallRecord.shadow.is_(False),
                CallRecord.model_id == model_id,
                CallRecord.alias == alias,
                CallRecord.created_at >= since,
                CallRecord.created_at < until,
                CallRecord.output.is_not(None),
                copy.output.is_not(None),
            )
        )
        counts: dict[int, tuple[int, int]] = {}
        for first, second, version_id in pairs:
            if first is None or second is None:
                continue
            compared, agreed = counts.get(version_id, (0, 0))
            counts[version_id] = (compared + 1, agreed + agree(first, second))
        return counts


def _side(
    semver: str,
    role: Role,
    weight: int | None,
    total: StatsPoint | None,
    scores: list[float],
    agreement: tuple[int, int] | None,
) -> Side:
    compared, agreed = agreement or (0, 0)
    scored = quality(scores)
    return Side(
        version=semver,
        role=role,
        weight=weight,
        calls=total.calls if total else 0,
        errors=total.errors if total else 0,
        error_rate=total.error_rate if total else 0.0,
        p50_ms=total.p50_ms if total else None,
        p95_ms=total.p95_ms if total else None,
        p99_ms=total.p99_ms if total else None,
        scored=scored.scored,
        accuracy=scored.accuracy,
        mean_abs_error=scored.mean_abs_error,
        compared=compared,
        agreement=agreed / compared if compared else None,
    )
