"""The signals alert rules watch (:mod:`algora.registry.alerts`): a registry of names, each a
function of a model, the version or alias a rule names (or neither: the whole model) and a
window, that returns the signal's value and how many calls (or scored answers) it is over.

- ``error_rate``, ``p95_ms``, ``p99_ms``: from the per-minute statistics
  (:mod:`algora.registry.stats`), over every call of the version (a rule naming an alias: of
  the versions it sends calls to now, its shadow left out; a rule naming neither: of every
  version of the model);
- ``accuracy``, ``mean_abs_error``: from ground-truth feedback (:mod:`algora.registry.quality`)
  on the calls made in the window (a rule naming an alias: the calls through it);
- ``drift``: the largest population stability index of any feature (or the output) of the
  versions read, over the window (:mod:`algora.registry.drift`; versions without drift on are
  left out), over the calls those versions counted.

Another signal is one ``register(name, fn)`` where ``fn(scope)`` returns a :class:`Reading`;
rules may name it as soon as it is registered (the API takes any registered name, and refuses
the others).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from algora.db.tables import Alias, Version
from algora.registry.drift import current_drift
from algora.registry.quality import QualitySums, quality, quality_sums, summed
from algora.registry.routing import target_rows
from algora.registry.stats import StatsPoint, version_named, window_total

__all__ = ["SIGNALS", "Reading", "Scope", "Signal", "register"]


@dataclass(frozen=True)
class Scope:
    """What a signal is read over: a model, optionally one version (``1.2.3``) or an alias,
    and a window from ``since`` to ``until`` (naive UTC)."""

    session: Session
    model_id: int
    model: str
    """``owner/name``, for messages."""
    version: str | None
    alias: str | None
    since: datetime
    until: datetime


@dataclass(frozen=True)
class Reading:
    value: float | None
    """None when the window holds nothing to read it from."""
    count: int
    """The calls (or scored answers) the value is over: rules need ``min_calls`` of them."""


Signal = Callable[[Scope], Reading]
SIGNALS: dict[str, Signal] = {}
"""Every signal a rule may name, by name."""


def register(name: str, signal: Signal) -> None:
    """Make ``signal`` available to rules as ``name`` (at most 32 characters)."""
    if not 0 < len(name) <= 32:
        raise ValueError("a signal's name is 1 to 32 characters")
    SIGNALS[name] = signal


def _version_ids(scope: Scope) -> list[int] | None:
    if scope.version is not None:
        return [version_named(scope.session, scope.model_id, scope.version, scope.model).id]
    if scope.alias is None:
        return None
    alias = scope.session.scalars(
        select(Alias).where(Alias.model_id == scope.model_id, Alias.name == scope.alias)
    ).first()
    if alias is None:
        return []
    rows = target_rows(scope.session, alias)
    return [version.id for target, version in rows if not target.shadow] or [alias.version_id]


def _calls(scope: Scope) -> StatsPoint:
    return window_total(
        scope.session, scope.model_id, _version_ids(scope), scope.since, scope.until
    )


def _scores(scope: Scope) -> QualitySums:
    version_id = None
    if scope.version is not None:
        version_id = version_named(scope.session, scope.model_id, scope.version, scope.model).id
    by_version, by_alias = quality_sums(
        scope.session,
        scope.model_id,
        scope.since,
        scope.until,
        lambda _moment: scope.since,
        version_id=version_id,
        alias=scope.alias,
    )
    if scope.alias is not None:
        return summed(by_alias.get(scope.alias, {}))
    total = [0.0] * 4
    for buckets in by_version.values():
        total = [a + b for a, b in zip(total, summed(buckets), strict=True)]
    return total


def _error_rate(scope: Scope) -> Reading:
    point = _calls(scope)
    return Reading(point.error_rate if point.calls else None, point.calls)


def _p95(scope: Scope) -> Reading:
    point = _calls(scope)
    return Reading(point.p95_ms, point.calls)


def _p99(scope: Scope) -> Reading:
    point = _calls(scope)
    return Reading(point.p99_ms, point.calls)


def _accuracy(scope: Scope) -> Reading:
    sums = _scores(scope)
    return Reading(quality(sums).accuracy, int(sums[0]))


def _mean_abs_error(scope: Scope) -> Reading:
    sums = _scores(scope)
    return Reading(quality(sums).mean_abs_error, int(sums[2]))


def _drift(scope: Scope) -> Reading:
    ids = _version_ids(scope)
    statement = select(Version).where(Version.model_id == scope.model_id)
    if ids is not None:
        statement = statement.where(Version.id.in_(ids))
    worst: float | None = None
    calls = 0
    for version in scope.session.scalars(statement):
        drift = current_drift(scope.session, version, scope.since, scope.until)
        if drift is None:
            continue
        calls += drift.calls
        scores = [f.psi for f in drift.features if f.psi is not None]
        if scores and (worst is None or max(scores) > worst):
            worst = max(scores)
    return Reading(worst, calls)


register("error_rate", _error_rate)
register("p95_ms", _p95)
register("p99_ms", _p99)
register("accuracy", _accuracy)
register("mean_abs_error", _mean_abs_error)
register("drift", _drift)
