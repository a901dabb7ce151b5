"""Rows a request records beside its own: a second change that one allowed request made.

An approval of a promotion moves an alias: the approval is the request's own row (written by
the gateway's audit middleware), and the move is a second row under the same request id, so
that reading the log by alias shows every move, however it was made.
"""

from __future__ import annotations

from datetime import UTC, datetime

from algora.audit.log import AuditEvent, AuthMethod

__all__ = ["follow_up"]


def follow_up(
    action: str,
    *,
    resource: str,
    version: str | None,
    request_id: str,
    principal: str,
    principal_id: int,
    key_id: str | None,
    auth_method: AuthMethod,
    peer: str | None,
    forwarded_for: str | None,
) -> AuditEvent:
    """The row of a second change an allowed request made, completed now."""
    now = datetime.now(UTC)
    return AuditEvent(
        action=action,
        received_at=now,
        completed_at=now,
        status=200,
        decision="allow",
        auth_method=auth_method,
        principal=principal,
        principal_id=principal_id,
        key_id=key_id,
        peer=peer[:64] if peer else None,
        forwarded_for=forwarded_for,
        resource=resource,
        version=version,
        request_id=request_id,
    )
