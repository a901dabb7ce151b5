"""Reading the audit log: filtered pages, a full export, and the chain's verification.

Every read first waits for the events already recorded to be committed (the writer batches
them), so a caller always finds the rows of the requests it made before. Reading needs the
``audit:read`` scope (admins' keys hold it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session, sessionmaker

from algora.audit.chain import FIELD_KINDS, FIELDS
from algora.audit.log import AuditLog, Outcome, as_dict, parse_anchor, query, report_dict, verify
from algora.auth.policy import require_scope
from algora.auth.principals import Caller
from algora.db.tables import AuditEventRow
from algora.errors import BadRequest

__all__ = ["EVENT_SCHEMA", "AuditFilter", "AuditQueries", "Page", "rfc3339"]

SCOPE = "audit:read"
_EXPORT_CHUNK = 1000
_TIMES = ("received_at", "completed_at")
_TYPES = {"int": "integer", "text": "string", "number": "number"}

EVENT_SCHEMA: dict[str, Any] = {
    "title": "AuditEvent",
    "type": "object",
    "required": [*FIELDS, "prev_hash", "hash"],
    "properties": {
        **{
            name: {
                "type": [_TYPES[kind.rstrip("?")], "null"] if kind.endswith("?") else _TYPES[kind]
            }
            for name, kind in FIELD_KINDS.items()
        },
        "id": {"type": "integer"},
        **{key: {"type": "string", "format": "date-time"} for key in _TIMES},
        "prev_hash": {"type": "string"},
        "hash": {"type": "string"},
    },
}
"""One audit event as ``GET /api/v1/audit`` and its export render it."""


@dataclass(frozen=True)
class AuditFilter:
    """Which events: each field given narrows the selection (datetimes in any zone)."""

    principal: str | None = None
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    outcome: Outcome | None = None
    request_id: str | None = None
    action: str | None = None
    """One action, or with a trailing ``*`` every action it begins (the web UI's search)."""

    def select(self, **paging: Any) -> Select[AuditEventRow]:
        """The query for these events (``paging``: what :func:`query` takes); ``outcome``
        error means allowed but failed."""
        statement = query(**paging)
        if self.principal is not None:
            statement = statement.where(AuditEventRow.principal == self.principal)
        if self.model is not None:
            statement = statement.where(AuditEventRow.resource == self.model)
        if self.since is not None:
            statement = statement.where(AuditEventRow.received_at >= _utc(self.since))
        if self.until is not None:
            statement = statement.where(AuditEventRow.received_at < _utc(self.until))
        if self.request_id is not None:
            statement = statement.where(AuditEventRow.request_id == self.request_id)
        statement = _outcome(statement, self.outcome)
        if self.action is None:
            return statement
        if self.action.endswith("*"):
            prefix = self.action.rstrip("*")
            return statement.where(AuditEventRow.action.startswith(prefix, autoescape=True))
        return statement.where(AuditEventRow.action == self.action)


@dataclass(frozen=True)
class Page:
    """Events newest first; ``cursor`` (None on the last page) asks for the next page."""

    events: list[dict[str, Any]]
    cursor: int | None


class AuditQueries:
    """Reads the audit log for callers holding ``audit:read``."""

    def __init__(self, sessions: sessionmaker[Session], log: AuditLog) -> None:
        self._sessions = sessions
        self._log = log

    async def page(
        self, caller: Caller, where: AuditFilter, limit: int = 100, before: int | None = None
    ) -> Page:
        """Up to ``limit`` events, newest first, older than the event ``before``."""
        require_scope(caller, SCOPE)
        await self._log.sync()
        statement = where.select(before_id=before).limit(limit)

        def load() -> list[dict[str, Any]]:
            with self._sessions() as session:
                return [_event(row) for row in session.scalars(statement)]

        events = await asyncio.to_thread(load)
        return Page(events, events[-1]["id"] if len(events) == limit else None)

    async def export(self, caller: Caller, where: AuditFilter) -> Iterator[bytes]:
        """Every matching event as JSON lines, oldest first (chain order), read in chunks
        as the iterator is consumed (run it in a thread)."""
        require_scope(caller, SCOPE)
        await self._log.sync()
        return self._lines(where)

    async def verify(self, caller: Caller, anchor: str | None = None) -> dict[str, Any]:
        """Walk the hash chain; the report names the first row that breaks it. ``anchor``
        (``ID:HASH`` from an earlier verify) also detects rows deleted from the end."""
        require_scope(caller, SCOPE)
        try:
            seen = parse_anchor(anchor) if anchor is not None else None
        except ValueError as error:
            raise BadRequest(str(error)) from None
        await self._log.sync()
        return report_dict(await asyncio.to_thread(verify, self._sessions, seen))

    def _lines(self, where: AuditFilter) -> Iterator[bytes]:
        after = 0
        while True:
            statement = where.select(after_id=after, newest_first=False)
            with self._sessions() as session:
                rows = [_event(row) for row in session.scalars(statement.limit(_EXPORT_CHUNK))]
            if not rows:
                return
            yield "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows).encode()
            after = rows[-1]["id"]


def rfc3339(value: datetime) -> str:
    """A time as RFC 3339 in UTC with microseconds: ``2026-01-02T03:04:05.000006Z``."""
    naive = value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)
    return naive.isoformat(timespec="microseconds") + "Z"


def _event(row: AuditEventRow) -> dict[str, Any]:
    """A row as the API renders it. The chain hashes the stored naive UTC times
    (:func:`~algora.audit.log.as_dict`); a reader gets them with their zone."""
    event = as_dict(row)
    for name in _TIMES:
        event[name] = rfc3339(getattr(row, name))
    return event


def _outcome(statement: Select[AuditEventRow], outcome: Outcome | None) -> Select[AuditEventRow]:
    if outcome == "deny":
        return statement.where(AuditEventRow.decision == "deny")
    if outcome == "allow":
        return statement.where(
            AuditEventRow.decision == "allow",
            AuditEventRow.status < 400,
            AuditEventRow.error_code.is_(None),
        )
    if outcome == "error":
        return statement.where(
            AuditEventRow.decision == "allow",
            (AuditEventRow.status >= 400) | AuditEventRow.error_code.is_not(None),
        )
    return statement


def _utc(value: datetime | None) -> datetime | None:
    """Aware datetimes to naive UTC, as the database stores them."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)
