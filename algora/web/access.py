"""Who may use a model: its access page (visibility and explicit grants, for its managers), and
asking for a promotion from its page.

Each form calls the service the API's route calls, with the signed-in principal's caller:
visibility ``Catalog.update_model`` (``PATCH /api/v1/models/{owner}/{name}``, ``model.update``),
grants ``Accounts.set_grant`` and ``remove_grant`` (``model.grant``, ``model.revoke_grant``),
a promotion ``Aliases.request_promotion`` (``promotion.request``); so the same callers are
refused and the audit rows name the same actions.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Annotated, get_args

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from algora.auth.accounts import GRANT_RIGHTS
from algora.errors import AlgoraError, BadRequest
from algora.gateway.auditing import note_error, trail_of
from algora.gateway.permissions import declare
from algora.registry.catalog import Visibility
from algora.web.admin import name_in, refused_again
from algora.web.pages import model_page_again
from algora.web.signin import SignedIn, Visitor, form_of, see_other
from algora.web.site import site_of

__all__ = ["router"]

router = APIRouter(prefix="/models/{owner}/{name}")
Manager = Annotated[Visitor, Depends(SignedIn("models:manage"))]
Changer = Annotated[Visitor, Depends(SignedIn("models:manage", write=True))]
Requester = Annotated[Visitor, Depends(SignedIn("aliases:write", write=True))]
VISIBILITIES: tuple[Visibility, ...] = get_args(Visibility)
_NOTE_CHARACTERS = 500


@router.get("/access", openapi_extra=declare("models:manage", audit="ui.access"))
async def access_page(request: Request, visitor: Manager, owner: str, name: str) -> Response:
    return await _access_page(request, visitor, owner, name)


async def _access_page(
    request: Request,
    visitor: Visitor,
    owner: str,
    name: str,
    status: int = 200,
    error: str | None = None,
) -> Response:
    site = site_of(request)
    platform, caller = site.platform, visitor.caller
    model = await asyncio.to_thread(platform.catalog.get_model, caller, owner, name)
    grants = await asyncio.to_thread(platform.accounts.grants, caller, owner, name)
    return site.render(
        request, "access.html", status, visitor=visitor, model=model, grants=grants,
        visibilities=VISIBILITIES, rights=GRANT_RIGHTS, error=error,
    )  # fmt: skip


@router.post("/visibility", openapi_extra=declare("models:manage", audit="model.update"))
async def set_visibility(request: Request, visitor: Changer, owner: str, name: str) -> Response:
    fields = await form_of(request, visitor.csrf)
    platform = site_of(request).platform
    try:
        chosen = fields.get("visibility", "")
        if chosen not in VISIBILITIES:
            raise BadRequest(f"a model's visibility is one of {', '.join(VISIBILITIES)}")
        update = functools.partial(platform.catalog.update_model, visibility=chosen)
        await asyncio.to_thread(update, visitor.caller, owner, name)
    except AlgoraError as error:
        return await refused_again(request, error, _access_page, visitor, owner, name)
    platform.calls.forget()  # who may call it changed: cached resolutions go
    return see_other(request, f"/models/{owner}/{name}/access")


@router.post("/grants", openapi_extra=declare("models:manage", audit="model.grant"))
async def set_grant(request: Request, visitor: Changer, owner: str, name: str) -> Response:
    fields = await form_of(request, visitor.csrf)
    accounts = site_of(request).platform.accounts
    try:
        principal = name_in(fields, "principal", "principal")
        right = fields.get("right", "")
        await asyncio.to_thread(accounts.set_grant, visitor.caller, owner, name, principal, right)
    except AlgoraError as error:
        return await refused_again(request, error, _access_page, visitor, owner, name)
    return see_other(request, f"/models/{owner}/{name}/access")


@router.post(
    "/grants/{principal}/revoke", openapi_extra=declare("models:manage", audit="model.revoke_grant")
)
async def revoke_grant(
    request: Request, visitor: Changer, owner: str, name: str, principal: str
) -> Response:
    await form_of(request, visitor.csrf)
    accounts = site_of(request).platform.accounts
    try:
        await asyncio.to_thread(accounts.remove_grant, visitor.caller, owner, name, principal)
    except AlgoraError as error:
        return await refused_again(request, error, _access_page, visitor, owner, name)
    return see_other(request, f"/models/{owner}/{name}/access")


@router.post("/promotions", openapi_extra=declare("aliases:write", audit="promotion.request"))
async def request_promotion(
    request: Request, visitor: Requester, owner: str, name: str
) -> Response:
    fields = await form_of(request, visitor.csrf)
    aliases = site_of(request).platform.aliases
    try:
        alias = name_in(fields, "alias", "alias")
        version = fields.get("version", "").strip()
        if not version:
            raise BadRequest("enter the version (or version spec) the alias should point at")
        note = fields.get("note", "")[:_NOTE_CHARACTERS]
        view = await asyncio.to_thread(
            aliases.request_promotion, visitor.caller, owner, name, alias, version, note
        )
    except AlgoraError as error:  # its page again: a hidden model's is a 404 there too
        note_error(request, error)
        return await model_page_again(
            request, visitor, owner, name, int(error.status), promotion_error=error.message
        )
    trail_of(request).resource, trail_of(request).version = view.model, view.audit_text
    return see_other(request, f"/models/{owner}/{name}#aliases-heading")
