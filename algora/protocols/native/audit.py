"""``/api/v1/audit``: query, export and verify the audit log (scope ``audit:read``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.orm import Session, sessionmaker

from algora.audit.log import Outcome, as_dict, parse_anchor, query, report_dict, verify
from algora.auth.principals import Caller
from algora.errors import BadRequest
from algora.gateway.deps import platform_of
from algora.gateway.permissions import Needs, PermissionRoute

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], route_class=PermissionRoute)

_EXPORT_CHUNK = 1000


ReaderDep = Annotated[Caller, Depends(Needs("audit:read"))]
"""Admins' ``*`` keys hold it; anyone else only as an explicit scope an admin handed out."""
PrincipalQ = Annotated[str | None, Query(description="Exact principal name.")]
ModelQ = Annotated[str | None, Query(description="owner/name")]
SinceQ = Annotated[datetime | None, Query(description="Received at or after (ISO 8601, UTC).")]
UntilQ = Annotated[datetime | None, Query(description="Received before (ISO 8601, UTC).")]
OutcomeQ = Annotated[
    Outcome | None, Query(description="allow, deny, or error (allowed but failed).")
]
RequestIdQ = Annotated[str | None, Query(max_length=128)]


@router.get("", summary="Audit events, newest first; X-Next-Cursor pages on")
async def list_events(
    request: Request,
    _reader: ReaderDep,
    principal: PrincipalQ = None,
    model: ModelQ = None,
    since: SinceQ = None,
    until: UntilQ = None,
    outcome: OutcomeQ = None,
    request_id: RequestIdQ = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[int | None, Query(ge=1, description="The last page's X-Next-Cursor.")] = None,
) -> JSONResponse:
    platform = platform_of(request)
    sessions = platform.sessions
    await platform.audit.sync()
    statement = query(
        principal=principal,
        model=model,
        since=_utc(since),
        until=_utc(until),
        outcome=outcome,
        request_id=request_id,
        before_id=cursor,
    ).limit(limit)

    def load() -> list[dict[str, Any]]:
        with sessions() as session:
            return [as_dict(row) for row in session.scalars(statement)]

    rows = await asyncio.to_thread(load)
    headers = {"X-Next-Cursor": str(rows[-1]["id"])} if len(rows) == limit else {}
    return JSONResponse(rows, headers=headers)


@router.get("/export", summary="Audit events as JSON lines, oldest first (chain order)")
async def export_events(
    request: Request,
    _reader: ReaderDep,
    principal: PrincipalQ = None,
    model: ModelQ = None,
    since: SinceQ = None,
    until: UntilQ = None,
    outcome: OutcomeQ = None,
) -> StreamingResponse:
    filters: dict[str, Any] = {
        "principal": principal,
        "model": model,
        "since": _utc(since),
        "until": _utc(until),
        "outcome": outcome,
    }
    platform = platform_of(request)
    await platform.audit.sync()
    lines = _export_lines(platform.sessions, filters)
    return StreamingResponse(lines, media_type="application/x-ndjson")


AnchorQ = Annotated[
    str | None,
    Query(
        max_length=100,
        description="ID:HASH from an earlier verify: also detect rows deleted from the end.",
    ),
]


@router.get("/verify", summary="Walk the hash chain; name the first row that breaks it")
async def verify_chain(
    request: Request, _reader: ReaderDep, anchor: AnchorQ = None
) -> dict[str, Any]:
    try:
        seen = parse_anchor(anchor) if anchor is not None else None
    except ValueError as error:
        raise BadRequest(str(error)) from None
    platform = platform_of(request)
    await platform.audit.sync()
    report = await asyncio.to_thread(verify, platform.sessions, seen)
    return report_dict(report)


def _export_lines(sessions: sessionmaker[Session], filters: dict[str, Any]) -> Iterator[bytes]:
    """Chunks of JSON lines, read page by page (Starlette iterates this in a thread)."""
    after = 0
    while True:
        statement = query(**filters, after_id=after, newest_first=False).limit(_EXPORT_CHUNK)
        with sessions() as session:
            rows = [as_dict(row) for row in session.scalars(statement)]
        if not rows:
            return
        yield "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows).encode()
        after = rows[-1]["id"]


def _utc(value: datetime | None) -> datetime | None:
    """Aware datetimes to naive UTC, as the database stores them."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)
