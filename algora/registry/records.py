"""Call records: what a version that opted in (``[monitoring] feedback = true``) answered each
call, kept so that ground truth sent later (:mod:`algora.registry.feedback`) scores it and an
alias's primary and shadow can be compared (:mod:`algora.registry.compare`).

The call path hands each answer to :meth:`CallRecords.record`: for a version that did not opt in
that is one dict lookup. A record is appended to a deque (thread safe, no lock) and written with
the others of the last few seconds by :meth:`CallRecords.write`, which the rollups' loop runs
(:meth:`algora.registry.rollups.Rollups.flush`); feedback writes what is pending first, and
writes are one at a time (a write in progress is waited for, not skipped), so a call's
feedback may follow its answer at once. On a gateway of another process or machine, a call's
record is written within a few seconds. Records older than the retention period are
deleted as they are written, at most once a minute.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.principals import Caller
from algora.db.tables import CallRecord, Model, Version
from algora.registry.scoring import score
from algora.registry.specs import is_alias_name
from algora.workers.spec import CallResult

__all__ = [
    "MAX_OUTPUT_BYTES",
    "Answered",
    "CallRecords",
    "PendingRecord",
    "Scored",
    "output_text",
    "records_calls",
]

logger = logging.getLogger(__name__)

MAX_OUTPUT_BYTES = 4096
"""The largest JSON output recorded; a larger one is recorded as not scorable."""
Scored = Callable[[str, str, str, bool | None, float | None], None]
"""Told of each answer scored: ``owner/name``, semver, alias, correct, absolute error."""
_PRUNE_SECONDS = 60.0
_KEPT_VERSIONS = 10_000


class Answered(Protocol):
    """What the call path's call (``algora.gateway.calls.Call``) tells of itself."""

    @property
    def caller(self) -> Caller: ...
    @property
    def spec(self) -> str | None: ...
    @property
    def shadow_of(self) -> str:
        """For a shadow's copy, the request id of the call it copied; else empty."""
        ...


@dataclass(frozen=True)
class PendingRecord:
    request_id: str
    shadow: bool
    model_id: int
    version_id: int
    alias: str
    caller: str
    created_at: datetime
    output: str | None


def output_text(result: CallResult) -> str | None:
    """The answer as compact JSON text, or None when it is no JSON or over the cap."""
    if result.content_type == "json" and len(result.payload) <= MAX_OUTPUT_BYTES:
        try:
            return json.dumps(json.loads(result.payload), separators=(",", ":"), sort_keys=True)
        except ValueError:
            return None
    if result.content_type == "text" and len(result.payload) <= MAX_OUTPUT_BYTES - 2:
        return json.dumps(result.payload.decode("utf-8", "replace"))
    return None


def records_calls(version: Version) -> bool:
    """Whether the version's manifest opts in to call records."""
    monitoring = version.manifest.get("monitoring") or {}
    return bool(monitoring.get("feedback", False))


class CallRecords:
    """Collects call records on the serving loop; writes them in batches."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        retention_days: float,
        on_scored: Scored | None = None,
    ) -> None:
        self._sessions = sessions
        self._on_scored = on_scored
        self._retention = timedelta(days=retention_days)
        self._pending: deque[PendingRecord] = deque()
        self._opted_in: dict[int, bool] = {}
        self._pruned = 0.0
        self._writing = threading.Lock()

    def record(
        self, call: Answered, model: Model, version: Version, request_id: str, result: CallResult
    ) -> None:
        """Keep what ``version`` answered ``call``, when it opted in; a shadow's copy is kept
        under the request id of the call it copied."""
        shadow_of = call.shadow_of
        opted_in = self._opted_in.get(version.id)
        if opted_in is None:
            if len(self._opted_in) > _KEPT_VERSIONS:
                self._opted_in.clear()
            opted_in = self._opted_in[version.id] = records_calls(version)
        if not opted_in or not (shadow_of or request_id):
            return
        self._pending.append(
            PendingRecord(
                request_id=(shadow_of or request_id)[:128],
                shadow=bool(shadow_of),
                model_id=model.id,
                version_id=version.id,
                alias=call.spec[:64] if call.spec and is_alias_name(call.spec) else "",
                caller=call.caller.name[:255],
                created_at=datetime.now(UTC).replace(tzinfo=None),
                output=output_text(result),
            )
        )

    def write(self) -> None:
        """Write the pending records (blocking); those a failure leaves are tried again. A
        write waits for one in progress, so what was pending before it is committed after it."""
        with self._writing:
            self._write()

    def _write(self) -> None:
        prune = time.monotonic() - self._pruned >= _PRUNE_SECONDS
        if not self._pending and not prune:
            return
        taken: list[PendingRecord] = []
        while self._pending:
            try:
                taken.append(self._pending.popleft())
            except IndexError:  # another thread took the last one
                break
        scored: list[tuple[str, str, str, bool | None, float | None]] = []
        try:
            with self._sessions() as session:
                if taken:
                    session.execute(_insert(session), [_row(record) for record in taken])
                    scored = _score_late(session, [r for r in taken if r.shadow])
                if prune:
                    cutoff = datetime.now(UTC).replace(tzinfo=None) - self._retention
                    session.execute(delete(CallRecord).where(CallRecord.created_at < cutoff))
                    self._pruned = time.monotonic()
                session.commit()
        except IntegrityError:  # a version that is gone: nothing to record it under
            logger.warning("dropped %d call record(s) of unknown versions", len(taken))
        except Exception:
            self._pending.extendleft(reversed(taken))
            raise
        if self._on_scored is not None:
            for late in scored:
                self._on_scored(*late)


def _score_late(
    session: Session, shadows: list[PendingRecord]
) -> list[tuple[str, str, str, bool | None, float | None]]:
    """Score the shadows' answers to calls whose feedback came before them (uncommitted)."""
    if not shadows:
        return []
    by_request = {record.request_id: record for record in shadows}
    primaries = session.execute(
        select(
            CallRecord.request_id, CallRecord.label, CallRecord.value, CallRecord.feedback_at
        ).where(
            CallRecord.request_id.in_(list(by_request)),
            CallRecord.shadow.is_(False),
            CallRecord.feedback_at.is_not(None),
        )
    ).all()
    scored = []
    for request_id, label, value, received_at in primaries:
        shadow = by_request[request_id]
        truth = json.loads(label) if label is not None else None
        correct, error = score(shadow.output, truth, value)
        session.execute(
            update(CallRecord)
            .where(CallRecord.request_id == request_id, CallRecord.shadow.is_(True))
            .values(correct=correct, abs_error=error, feedback_at=received_at)
        )
        version = session.get(Version, shadow.version_id)
        if version is not None and (correct is not None or error is not None):
            name = f"{version.model.owner.name}/{version.model.name}"
            scored.append((name, version.semver, shadow.alias, correct, error))
    return scored


def _row(record: PendingRecord) -> dict[str, Any]:
    return {
        "request_id": record.request_id,
        "shadow": record.shadow,
        "model_id": record.model_id,
        "version_id": record.version_id,
        "alias": record.alias,
        "caller": record.caller,
        "created_at": record.created_at,
        "output": record.output,
    }


def _insert(session: Session) -> Any:
    """Insert, leaving the first record of a request id (a caller may repeat its own id)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(CallRecord).on_conflict_do_nothing(index_elements=["request_id", "shadow"])
