"""What the audit tests share: a call event, and a trigger that makes the database refuse rows."""

from __future__ import annotations

from datetime import UTC, datetime

from algora.audit.log import AuditEvent

REFUSE_INSERTS = (
    "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit refused by the test'); END"
)
"""Run on the registry's SQLite file: every audit row after it is refused until it is dropped."""


def call_event(n: int) -> AuditEvent:
    """Alice's call of alice/mN, request id req-N, allowed and answered 200."""
    now = datetime.now(UTC)
    return AuditEvent(
        action="model.call",
        received_at=now,
        completed_at=now,
        status=200,
        decision="allow",
        principal="alice",
        resource=f"alice/m{n}",
        request_id=f"req-{n}",
    )
