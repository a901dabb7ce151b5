"""The audit log page, for keys holding ``audit:read``: who called or changed what, searched
by caller, model, action, outcome and time, through the same service as ``/api/v1/audit``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from algora.audit.queries import AuditFilter
from algora.errors import InvalidInput
from algora.gateway.permissions import declare
from algora.web.signin import SignedIn, Visitor
from algora.web.site import site_of

__all__ = ["router"]

router = APIRouter()
Reader = Annotated[Visitor, Depends(SignedIn("audit:read"))]
Text = Annotated[str, Query(max_length=129)]
_PAGE = 100


@router.get("/audit", openapi_extra=declare("audit:read", audit="audit.read", always=True))
async def audit_page(
    request: Request,
    visitor: Reader,
    principal: Text = "",
    model: Text = "",
    action: Text = "",
    outcome: Literal["", "allow", "deny", "error"] = "",
    since: Annotated[str, Query(max_length=32)] = "",
    until: Annotated[str, Query(max_length=32)] = "",
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    where = AuditFilter(
        principal=principal.strip() or None, model=model.strip() or None,
        since=_moment(since, "since"), until=_moment(until, "until"),
        outcome=outcome or None, action=action.strip() or None,
    )  # fmt: skip
    site = site_of(request)
    page = await site.platform.audit_queries.page(visitor.caller, where, _PAGE, before)
    asked = {"principal": principal, "model": model, "action": action, "outcome": outcome,
             "since": since, "until": until}  # fmt: skip
    return site.render(
        request, "audit.html", visitor=visitor, events=page.events, cursor=page.cursor,
        asked=asked,
    )  # fmt: skip


def _moment(text: str, name: str) -> datetime | None:
    """A date or a date and time from the form (UTC unless it says otherwise)."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"'{name}' is not a date or time: write it as 2026-01-31 or 2026-01-31T14:30"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
