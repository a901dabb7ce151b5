"""``/api/v1/audit``: query, export and verify the audit log (scope ``audit:read``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from algora.audit.log import Outcome
from algora.audit.queries import AuditFilter
from algora.auth.principals import Caller
from algora.gateway.deps import platform_of
from algora.gateway.permissions import Needs, PermissionRoute, audited

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], route_class=PermissionRoute)


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


@router.get(
    "",
    summary="Audit events, newest first; X-Next-Cursor pages on",
    openapi_extra=audited("audit.read", always=True),
)
async def list_events(
    request: Request,
    reader: ReaderDep,
    principal: PrincipalQ = None,
    model: ModelQ = None,
    since: SinceQ = None,
    until: UntilQ = None,
    outcome: OutcomeQ = None,
    request_id: RequestIdQ = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[int | None, Query(ge=1, description="The last page's X-Next-Cursor.")] = None,
) -> JSONResponse:
    where = AuditFilter(principal, model, since, until, outcome, request_id)
    page = await platform_of(request).audit_queries.page(reader, where, limit, cursor)
    headers = {"X-Next-Cursor": str(page.cursor)} if page.cursor is not None else {}
    return JSONResponse(page.events, headers=headers)


@router.get(
    "/export",
    summary="Audit events as JSON lines, oldest first (chain order)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}}},
    openapi_extra=audited("audit.read", always=True),
)
async def export_events(
    request: Request,
    reader: ReaderDep,
    principal: PrincipalQ = None,
    model: ModelQ = None,
    since: SinceQ = None,
    until: UntilQ = None,
    outcome: OutcomeQ = None,
) -> StreamingResponse:
    where = AuditFilter(principal, model, since, until, outcome)
    lines = await platform_of(request).audit_queries.export(reader, where)
    return StreamingResponse(lines, media_type="application/x-ndjson")


AnchorQ = Annotated[
    str | None,
    Query(
        max_length=100,
        description="ID:HASH from an earlier verify: also detect rows deleted from the end.",
    ),
]


@router.get(
    "/verify",
    summary="Walk the hash chain; name the first row that breaks it",
    openapi_extra=audited("audit.read", always=True),
)
async def verify_chain(
    request: Request, reader: ReaderDep, anchor: AnchorQ = None
) -> dict[str, Any]:
    return await platform_of(request).audit_queries.verify(reader, anchor)
