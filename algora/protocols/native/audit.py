"""``/api/v1/audit``: query, export and verify the audit log (scope ``audit:read``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, StreamingResponse

from algora.audit.log import Outcome
from algora.audit.queries import AuditFilter, AuditQueries, Page
from algora.auth.principals import Caller
from algora.gateway.permissions import Needs, PermissionRoute
from algora.protocols.routing import Answer, Op, add_routes, as_is

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


AnchorQ = Annotated[
    str | None,
    Query(
        max_length=100,
        description="ID:HASH from an earlier verify: also detect rows deleted from the end.",
    ),
]
_WHICH: dict[str, tuple[Any, Any]] = {
    "principal": (PrincipalQ, None),
    "model": (ModelQ, None),
    "since": (SinceQ, None),
    "until": (UntilQ, None),
    "outcome": (OutcomeQ, None),
}
"""Which events: the query the list and the export share (AuditFilter's fields, in order)."""


async def _page(queries: AuditQueries, reader: Caller, *query: Any) -> Page:
    """A page of the events ``query`` selects: the filter's values, then limit and cursor."""
    *where, limit, cursor = query
    return await queries.page(reader, AuditFilter(*where), limit, cursor)


async def _export(queries: AuditQueries, reader: Caller, *where: Any) -> Iterator[bytes]:
    return await queries.export(reader, AuditFilter(*where))


def _page_response(page: Page) -> JSONResponse:
    headers = {"X-Next-Cursor": str(page.cursor)} if page.cursor is not None else {}
    return JSONResponse(page.events, headers=headers)


def _lines(lines: Iterator[bytes]) -> StreamingResponse:
    return StreamingResponse(lines, media_type="application/x-ndjson")


add_routes(
    router,
    lambda platform: platform.audit_queries,
    Op(
        "GET ",
        "list_events",
        _page,
        ReaderDep,
        Answer(JSONResponse, _page_response),
        "audit.read",
        always=True,
        query={
            **_WHICH,
            "request_id": (RequestIdQ, None),
            "limit": (Annotated[int, Query(ge=1, le=1000)], 100),
            "cursor": (
                Annotated[int | None, Query(ge=1, description="The last page's X-Next-Cursor.")],
                None,
            ),
        },
        summary="Audit events, newest first; X-Next-Cursor pages on",
    ),
    Op(
        "GET /export",
        "export_events",
        _export,
        ReaderDep,
        Answer(StreamingResponse, _lines),
        "audit.read",
        always=True,
        query=_WHICH,
        summary="Audit events as JSON lines, oldest first (chain order)",
        options={
            "response_class": StreamingResponse,
            "responses": {
                200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}}
            },
        },
    ),
    Op(
        "GET /verify",
        "verify_chain",
        AuditQueries.verify,
        ReaderDep,
        as_is(dict[str, Any]),
        "audit.read",
        always=True,
        query={"anchor": (AnchorQ, None)},
        summary="Walk the hash chain; name the first row that breaks it",
    ),
)
