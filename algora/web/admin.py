"""Administration of principals: users (an admin creates them, each with a first key shown
once), organizations (any user creates one and owns it) and their members and roles.

The pages call :class:`~algora.auth.accounts.Accounts` with the signed-in principal's caller,
as ``/api/v1/principals`` and ``/api/v1/orgs`` do, so the same rules refuse the same people;
each form's audit row has the API's action and resource. Principals are not disabled here:
the API has no such change (revoking a principal's keys on the keys page is how access ends).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from algora.auth.policy import ROLES
from algora.errors import AlgoraError, BadRequest
from algora.gateway.auditing import note_error, trail_of
from algora.gateway.permissions import declare
from algora.web.signin import SignedIn, Visitor, form_of, see_other
from algora.web.site import site_of

__all__ = ["refused_again", "router"]

router = APIRouter(prefix="/admin")
Reader = Annotated[Visitor, Depends(SignedIn("principals:manage"))]
Writer = Annotated[Visitor, Depends(SignedIn("principals:manage", write=True))]


async def refused_again(
    request: Request, error: AlgoraError, page: Callable[..., Awaitable[Response]], *args: Any
) -> Response:
    """A form the service refused: its ``page(request, *args)`` again with the reason and the
    refusal's status. The page checks the visitor's rights again, so the page of something
    hidden from them is the plain not-found page, whatever the form said."""
    note_error(request, error)
    return await page(request, *args, status=int(error.status), error=error.message)


def name_in(fields: dict[str, str], field: str, what: str) -> str:
    name = fields.get(field, "").strip()
    if not name:
        raise BadRequest(f"enter the {what}'s name")
    return name


# users ------------------------------------------------------------------------------------------
@router.get("/users", openapi_extra=declare("principals:manage", audit="ui.users"))
async def users_page(request: Request, visitor: Reader) -> Response:
    return await _users_page(request, visitor)


async def _users_page(
    request: Request, visitor: Visitor, status: int = 200, **shown: Any
) -> Response:
    site = site_of(request)
    principals = await asyncio.to_thread(site.platform.accounts.principals, visitor.caller)
    return site.render(
        request, "admin_users.html", status, visitor=visitor, principals=principals,
        **{"created": None, "error": None, **shown},
    )  # fmt: skip


@router.post("/users", openapi_extra=declare("principals:manage", audit="principal.create"))
async def create_user(request: Request, visitor: Writer) -> Response:
    fields = await form_of(request, visitor.csrf)
    accounts = site_of(request).platform.accounts
    try:
        name = name_in(fields, "name", "user")
        trail_of(request).resource = f"principal/{name}"
        created = await asyncio.to_thread(accounts.create_user_with_key, visitor.caller, name)
    except AlgoraError as error:
        return await refused_again(request, error, _users_page, visitor)
    # The first key's secret is in this answer only (the page is not cached).
    return await _users_page(request, visitor, 201, created=created)


# organizations and members ----------------------------------------------------------------------
@router.get("/orgs", openapi_extra=declare("principals:manage", audit="ui.orgs"))
async def orgs_page(request: Request, visitor: Reader) -> Response:
    return await _orgs_page(request, visitor)


async def _orgs_page(
    request: Request, visitor: Visitor, status: int = 200, error: str | None = None
) -> Response:
    site = site_of(request)
    orgs = await asyncio.to_thread(site.platform.accounts.orgs, visitor.caller)
    return site.render(request, "admin_orgs.html", status, visitor=visitor, orgs=orgs, error=error)


@router.post("/orgs", openapi_extra=declare("principals:manage", audit="org.create"))
async def create_org(request: Request, visitor: Writer) -> Response:
    fields = await form_of(request, visitor.csrf)
    accounts = site_of(request).platform.accounts
    try:
        name = name_in(fields, "name", "organization")
        trail_of(request).resource = f"org/{name}"
        await asyncio.to_thread(accounts.create_org, visitor.caller, name)
    except AlgoraError as error:
        return await refused_again(request, error, _orgs_page, visitor)
    return see_other(request, f"/admin/orgs/{name}")


@router.get("/orgs/{org}", openapi_extra=declare("principals:manage", audit="ui.org"))
async def org_page(request: Request, visitor: Reader, org: str) -> Response:
    return await _org_page(request, visitor, org)


async def _org_page(
    request: Request, visitor: Visitor, org: str, status: int = 200, error: str | None = None
) -> Response:
    site = site_of(request)
    members = await asyncio.to_thread(site.platform.accounts.members, visitor.caller, org)
    return site.render(
        request, "admin_org.html", status, visitor=visitor, org=org, members=members,
        roles=ROLES, error=error,
    )  # fmt: skip


@router.post(
    "/orgs/{org}/members", openapi_extra=declare("principals:manage", audit="org.member_set")
)
async def set_member(request: Request, visitor: Writer, org: str) -> Response:
    fields = await form_of(request, visitor.csrf)
    accounts = site_of(request).platform.accounts
    try:
        member = name_in(fields, "member", "member")
        trail_of(request).resource = f"org/{org}/{member}"
        role = fields.get("role", "")
        await asyncio.to_thread(accounts.set_member, visitor.caller, org, member, role)
    except AlgoraError as error:
        return await refused_again(request, error, _org_page, visitor, org)
    return see_other(request, f"/admin/orgs/{org}")


@router.post(
    "/orgs/{org}/members/{member}/remove",
    openapi_extra=declare("principals:manage", audit="org.member_remove"),
)
async def remove_member(request: Request, visitor: Writer, org: str, member: str) -> Response:
    await form_of(request, visitor.csrf)
    trail_of(request).resource = f"org/{org}/{member}"
    accounts = site_of(request).platform.accounts
    try:
        await asyncio.to_thread(accounts.remove_member, visitor.caller, org, member)
    except AlgoraError as error:
        return await refused_again(request, error, _org_page, visitor, org)
    return see_other(request, f"/admin/orgs/{org}")
