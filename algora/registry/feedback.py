"""Ground-truth feedback: the true answer to a call, sent later under the call's request id,
scores what the version answered (recorded by :mod:`algora.registry.records`).

A ``label`` is compared for equality with the model's prediction (classification: accuracy);
a ``value`` gives the absolute difference from it (regression: mean absolute error). The
prediction is the output itself, or, for an object, its ``label`` (or ``value``) field, else its
``prediction`` field. A shadow's answer to the same call is scored too, so a comparison sees
both versions' accuracy. Feedback is final: a second one for the same call is refused (409).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.policy import can, require
from algora.auth.principals import Caller
from algora.auth.scopes import has_scope
from algora.db.tables import CallRecord, Model, Version
from algora.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from algora.registry.records import CallRecords, Scored
from algora.registry.scoring import number, score

__all__ = ["Feedback", "FeedbackView"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedbackView:
    request_id: str
    model: str
    version: str
    alias: str | None
    label: Any
    value: float | None
    scored: bool
    """Whether the output could be scored: a JSON answer, within the size recorded, holding a
    prediction of the ground truth's kind."""
    correct: bool | None
    abs_error: float | None
    received_at: datetime


class Feedback:
    """Takes ground truth for recorded calls."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        records: CallRecords,
        retention_days: float,
        on_scored: Scored | None = None,
    ) -> None:
        self._sessions = sessions
        self._records = records
        self._days = retention_days
        self._on_scored = on_scored

    def give(
        self, caller: Caller, request_id: str, label: Any = None, value: float | None = None
    ) -> FeedbackView:
        """Score the call ``request_id`` with its true ``label`` or ``value`` (exactly one). The
        caller must be allowed to call its model; a call not recorded (unknown, too old, or of a
        version that does not record calls) is a 404, a second feedback a 409."""
        if (label is None) == (value is None):
            raise InvalidInput(
                "send the ground truth as either label or value: exactly one of them"
            )
        if value is not None and number(value) is None:
            raise InvalidInput("value must be a finite number")
        self._records.write()  # the call may have been answered a moment ago
        with self._sessions() as session:
            rows = session.scalars(
                select(CallRecord).where(CallRecord.request_id == request_id)
            ).all()
            primary = next((row for row in rows if not row.shadow), None)
            model = session.get(Model, primary.model_id) if primary is not None else None
            unknown = NotFound(
                f"no recorded call has request id '{request_id[:128]}': feedback is taken for "
                f"{self._days:g} days after a call to a version whose algora.toml has "
                "[monitoring] feedback = true; send the X-Request-Id of the call's answer",
                details={"request_id": request_id[:128]},
            )
            if primary is None or model is None:
                raise unknown
            # The key's scopes first, as for a call; the refusal names no model, so a request id
            # tells a stranger nothing of the call.
            name = f"{model.owner.name}/{model.name}"
            if not has_scope(caller.scopes, "call", name, is_admin=caller.is_admin):
                raise PermissionDenied(
                    "this key's call scope does not cover the model that answered "
                    f"'{request_id[:128]}': send feedback with a key that may call it"
                )
            if not can(caller, "read", model):
                raise unknown
            require(caller, "call", model)
            if primary.feedback_at is not None:
                raise Conflict(
                    f"call '{request_id}' already has feedback (from {primary.feedback_by} at "
                    f"{primary.feedback_at:%Y-%m-%d %H:%M:%S} UTC): feedback is final, one per call"
                )
            now = datetime.now(UTC).replace(tzinfo=None)
            text = json.dumps(label) if label is not None else None
            scores = {row.id: score(row.output, label, value) for row in rows}
            taken = session.execute(
                update(CallRecord)
                .where(CallRecord.id == primary.id, CallRecord.feedback_at.is_(None))
                .values(label=text, value=value, feedback_at=now, feedback_by=caller.name[:255])
                .execution_options(synchronize_session=False)
            )
            if getattr(taken, "rowcount", 1) != 1:
                raise Conflict(f"call '{request_id}' got feedback at the same time: it is final")
            for row in rows:
                correct, error = scores[row.id]
                session.execute(
                    update(CallRecord)
                    .where(CallRecord.id == row.id)
                    .values(correct=correct, abs_error=error, feedback_at=now)
                    .execution_options(synchronize_session=False)
                )
            semvers = {
                row.version_id: version.semver
                for row in rows
                if (version := session.get(Version, row.version_id)) is not None
            }
            session.commit()
        if self._on_scored is not None:
            for row in rows:
                correct, error = scores[row.id]
                if correct is not None or error is not None:
                    self._on_scored(
                        name, semvers.get(row.version_id, ""), row.alias, correct, error
                    )
        correct, error = scores[primary.id]
        return FeedbackView(
            request_id=request_id,
            model=name,
            version=semvers.get(primary.version_id, ""),
            alias=primary.alias or None,
            label=label,
            value=value,
            scored=correct is not None or error is not None,
            correct=correct,
            abs_error=error,
            received_at=now,
        )
