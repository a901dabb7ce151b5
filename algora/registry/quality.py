"""Live accuracy from feedback, summed per version and per alias over the buckets of a window,
for the statistics (:mod:`algora.registry.stats`) and comparisons
(:mod:`algora.registry.compare`). Each scored call counts in the bucket of the call (not of
its feedback). An alias's figures are what it returned (its shadow's answers count under the
shadow's version only)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from algora.db.tables import CallRecord

__all__ = ["Quality", "QualitySums", "add_score", "quality", "quality_sums", "summed"]

QualitySums = list[float]
"""[labelled, correct, valued, absolute error summed]"""


@dataclass(frozen=True)
class Quality:
    """How well answers matched the ground truth sent for them."""

    scored: int
    """Answers scored by feedback."""
    accuracy: float | None
    """Correct / labelled; None without labelled feedback."""
    mean_abs_error: float | None
    """Mean absolute error of the answers given a value; None without any."""


def quality(sums: QualitySums | None) -> Quality:
    labelled, correct, valued, error = sums or [0.0] * 4
    return Quality(
        scored=int(labelled + valued),
        accuracy=correct / labelled if labelled else None,
        mean_abs_error=error / valued if valued else None,
    )


def summed(buckets: dict[datetime, QualitySums]) -> QualitySums:
    """The buckets' sums added up."""
    total = [0.0] * 4
    for sums in buckets.values():
        total = [a + b for a, b in zip(total, sums, strict=True)]
    return total


def add_score(sums: QualitySums, correct: bool | None, abs_error: float | None) -> None:
    if correct is not None:
        sums[0] += 1
        sums[1] += correct
    if abs_error is not None:
        sums[2] += 1
        sums[3] += abs_error


def quality_sums(
    session: Session,
    model_id: int,
    start: datetime,
    end: datetime,
    bucket: Callable[[datetime], datetime],
    *,
    version_id: int | None = None,
    alias: str | None = None,
) -> tuple[dict[int, dict[datetime, QualitySums]], dict[str, dict[datetime, QualitySums]]]:
    """The scored calls of the model from ``start`` to ``end`` by version and by alias, each
    by ``bucket`` (of the call's time); only ``version_id`` or ``alias`` when given."""
    statement: Any = select(
        CallRecord.version_id,
        CallRecord.alias,
        CallRecord.shadow,
        CallRecord.created_at,
        CallRecord.correct,
        CallRecord.abs_error,
    ).where(
        CallRecord.model_id == model_id,
        CallRecord.created_at >= start,
        CallRecord.created_at < end,
        CallRecord.feedback_at.is_not(None),
    )
    if version_id is not None:
        statement = statement.where(CallRecord.version_id == version_id)
    if alias is not None:
        statement = statement.where(CallRecord.alias == alias)
    by_version: dict[int, dict[datetime, QualitySums]] = {}
    by_alias: dict[str, dict[datetime, QualitySums]] = {}
    for version, alias_name, shadow, at, correct, abs_error in session.execute(statement):
        if correct is None and abs_error is None:
            continue
        at = bucket(at)
        add_score(by_version.setdefault(version, {}).setdefault(at, [0.0] * 4), correct, abs_error)
        if alias_name and not shadow:
            sums = by_alias.setdefault(alias_name, {}).setdefault(at, [0.0] * 4)
            add_score(sums, correct, abs_error)
    return by_version, by_alias
