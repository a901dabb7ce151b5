"""Approving and rejecting promotions from a model's page: the same service and the same
audit rows as the native API's (``promotion.approve`` plus ``alias.move``, ``promotion.reject``)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from algora.errors import AlgoraError
from algora.gateway import promotions
from algora.gateway.auditing import note_error, trail_of
from algora.gateway.calls import new_request_id
from algora.gateway.permissions import declare
from algora.web.pages import model_page_again
from algora.web.signin import SignedIn, Visitor, form_of, see_other
from algora.web.site import site_of

__all__ = ["router"]

router = APIRouter()
Decider = Annotated[Visitor, Depends(SignedIn("aliases:approve"))]
PromotionId = Annotated[int, Path(ge=1, le=2**31 - 1)]
_NOTE_CHARACTERS = 1000


@router.post(
    "/models/{owner}/{name}/promotions/{promotion_id}/approve",
    openapi_extra=declare("aliases:approve", audit="promotion.approve"),
)
async def approve(
    request: Request, visitor: Decider, owner: str, name: str, promotion_id: PromotionId
) -> Response:
    fields = await form_of(request, visitor.csrf)
    trail = trail_of(request)
    trail.request_id = trail.request_id or new_request_id()
    origin = promotions.Origin(
        trail.request_id,
        request.client.host if request.client else None,
        request.headers.get("x-forwarded-for"),
        None,  # signed in with a session: no Authorization header
    )
    try:
        view, _move = await promotions.approve(
            site_of(request).platform, visitor.caller, owner, name, promotion_id,
            fields.get("note", "")[:_NOTE_CHARACTERS], origin,
        )  # fmt: skip
    except AlgoraError as error:
        return await _refused(request, visitor, owner, name, error)
    trail.resource, trail.version = view.model, view.audit_text
    return see_other(request, f"/models/{owner}/{name}#aliases-heading")


@router.post(
    "/models/{owner}/{name}/promotions/{promotion_id}/reject",
    openapi_extra=declare("aliases:approve", audit="promotion.reject"),
)
async def reject(
    request: Request, visitor: Decider, owner: str, name: str, promotion_id: PromotionId
) -> Response:
    fields = await form_of(request, visitor.csrf)
    try:
        view = await asyncio.to_thread(
            site_of(request).platform.aliases.reject, visitor.caller, owner, name, promotion_id,
            fields.get("note", "")[:_NOTE_CHARACTERS],
        )  # fmt: skip
    except AlgoraError as error:
        return await _refused(request, visitor, owner, name, error)
    trail_of(request).resource, trail_of(request).version = view.model, view.audit_text
    return see_other(request, f"/models/{owner}/{name}#aliases-heading")


async def _refused(
    request: Request, visitor: Visitor, owner: str, name: str, error: AlgoraError
) -> Response:
    note_error(request, error)
    if error.status == 404:
        raise error
    return await model_page_again(
        request, visitor, owner, name, int(error.status), promotion_error=error.message
    )
