"""The keys page: the signed-in principal's own keys; create one (its secret shown once) and
revoke one, through the same service as ``/api/v1/keys``."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from algora.auth.scopes import SCOPES
from algora.errors import AlgoraError, BadRequest
from algora.gateway.auditing import note_error, trail_of
from algora.gateway.permissions import declare
from algora.web.signin import SignedIn, Visitor, form_of, see_other
from algora.web.site import site_of

__all__ = ["router"]

router = APIRouter()
KeyManager = Annotated[Visitor, Depends(SignedIn("keys:manage"))]


@router.get("/keys", openapi_extra=declare("keys:manage", audit="ui.keys"))
async def keys_page(request: Request, visitor: KeyManager) -> Response:
    return await _keys_page(request, visitor)


async def _keys_page(
    request: Request, visitor: Visitor, status: int = 200, **shown: Any
) -> Response:
    site = site_of(request)
    keys = await asyncio.to_thread(site.platform.keyring.list_keys, visitor.caller)
    keys.sort(key=lambda k: (k.revoked, -k.created_at.timestamp()))
    return site.render(
        request, "keys.html", status, visitor=visitor, keys=keys, scopes=SCOPES,
        **{"created": None, "error": None, **shown},
    )  # fmt: skip


@router.post("/keys", openapi_extra=declare("keys:manage", audit="key.create"))
async def create_key(request: Request, visitor: KeyManager) -> Response:
    fields = await form_of(request, visitor.csrf)
    chosen = [scope for scope in SCOPES if fields.get(f"scope:{scope}") == "on"]
    try:
        if not chosen:
            raise BadRequest("choose at least one scope for the new key")
        days = fields.get("expires_in_days", "").strip()
        if days and not days.isdigit():
            raise BadRequest("the key's lifetime is a whole number of days (or empty: none)")
        created = await asyncio.to_thread(
            site_of(request).platform.keyring.create_key,
            visitor.caller,
            fields.get("name", "").strip()[:128],
            scopes=chosen,
            expires_in_days=int(days) if days else None,
        )
    except AlgoraError as error:
        note_error(request, error)
        return await _keys_page(request, visitor, int(error.status), error=error.message)
    trail_of(request).resource = f"key/{created.key_id}"
    # The secret is in this answer only: it is never stored, and the page is not cached.
    return await _keys_page(request, visitor, 201, created=created)


@router.post("/keys/{key_id}/revoke", openapi_extra=declare("keys:manage", audit="key.revoke"))
async def revoke_key(request: Request, visitor: KeyManager, key_id: str) -> Response:
    await form_of(request, visitor.csrf)
    try:
        await asyncio.to_thread(
            site_of(request).platform.keyring.revoke_key, visitor.caller, key_id
        )
    except AlgoraError as error:
        note_error(request, error)
        if error.status == 404:
            raise
        return await _keys_page(request, visitor, int(error.status), error=error.message)
    return see_other(request, "/keys")
