"""Algorithmia's users and organizations for its own clients, mapped onto Algora's principals.

The routes ``client.create_user``, ``create_org``, ``get_org``, ``edit_org``,
``invite_to_org`` and ``get_org_types`` reach. An Algorithmia user is an Algora user, an
organization an Algora organization; what Algorithmia says of them beyond a name (email, full
name, label, contact, URL, company, organization type) is kept in a profile that Algora shows
and never acts on. Algora's rules decide who may do what, in the one service that the native
API uses too (:mod:`algora.auth.accounts`):

- only admins create users (``POST /v1/users``); the new user has no key yet: an admin
  creates one (``algora keys create --principal NAME``);
- any user creates an organization and becomes its owner;
- an organization is seen by its members (others: not found) and edited by its owners and
  admins, who also invite: ``invite_to_org`` makes a user or service account a ``member``
  (an existing member keeps its role).

Names follow Algora's rule (1-64 lowercase letters, digits, ``-`` and ``_``); a name Algorithmia
allowed but Algora does not is refused with what to use instead. Organization types are
Algorithmia's three (``basic``, ``legacy``, ``pro``); their id is their name, and they are
recorded, not enforced. Every change is in the audit log.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from algora.auth.accounts import Accounts, ProfiledView, check_name
from algora.auth.principals import Caller
from algora.auth.profiles import EMAIL_PATTERN, ORG_TYPES, URL_PATTERN, ProfileChange
from algora.errors import BadRequest, InvalidInput
from algora.gateway.auditing import trail_of
from algora.gateway.deps import platform_of, read_body
from algora.gateway.inputs import decode_json
from algora.gateway.openapi import request_body
from algora.gateway.permissions import AUTHENTICATED, Needs, PermissionRoute, audited
from algora.modelfolder.manifest import NAME_PATTERN
from algora.protocols.routing import Answer, Op, add_routes

__all__ = ["ORG_TYPES", "router"]

router = APIRouter(prefix="/v1", route_class=PermissionRoute, tags=["algorithmia"])
Authenticated = Annotated[Caller, Depends(Needs(AUTHENTICATED))]
ReadPrincipals = Annotated[Caller, Depends(Needs("principals:manage"))]
WritePrincipals = Annotated[Caller, Depends(Needs("principals:manage", write=True))]

_MAX_BODY = 64 * 1024


class _Lenient(BaseModel):
    """Algorithmia's request objects: fields Algora does not keep are accepted and ignored
    (passwords among them: never stored)."""

    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True, str_strip_whitespace=True)


class UserIn(_Lenient):
    username: str = Field(min_length=1, max_length=64)
    email: str = Field(default="", max_length=254)
    fullname: str = Field(default="", max_length=128)
    company_name: str = Field(default="", max_length=128)
    company_role: str = Field(default="", max_length=128)


class OrgFields(_Lenient):
    org_label: str | None = Field(default=None, max_length=128)
    org_contact_name: str | None = Field(default=None, max_length=128)
    org_email: str | None = Field(default=None, max_length=254)
    org_url: str | None = Field(default=None, max_length=512)
    type_id: str | None = None

    def change(self) -> ProfileChange:
        return ProfileChange(
            email=self.org_email,
            full_name=self.org_label,
            contact_name=self.org_contact_name,
            url=self.org_url,
            org_type=self.type_id,
        )


class OrgIn(OrgFields):
    org_name: str = Field(min_length=1, max_length=64)


class OrgEdit(OrgFields):
    org_name: str | None = Field(default=None, max_length=64)


async def _body(request: Request, model: type[_Lenient]) -> Any:
    raw = await read_body(request, _MAX_BODY)
    try:
        value = decode_json(raw) if raw.strip() else {}
    except (UnicodeDecodeError, ValueError):
        value = None
    if not isinstance(value, dict):
        raise InvalidInput("the body is not a JSON object")
    try:
        return model.model_validate(value)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in error.errors(include_input=False)
        )
        raise InvalidInput(f"invalid request: {problems}") from None


def _accounts(request: Request) -> Accounts:
    return platform_of(request).accounts


def _link(request: Request, path: str) -> str:
    return str(request.base_url).rstrip("/") + path


def _user_out(request: Request, view: ProfiledView) -> dict[str, Any]:
    user, profile = view.principal, view.profile
    return {
        "id": str(user.id),
        "username": user.name,
        "email": profile.email,
        "fullname": profile.full_name,
        "company_name": profile.company_name,
        "company_role": profile.company_role,
        "self_link": _link(request, f"/v1/users/{user.name}"),
        "resource_type": "user",
    }


def _org_out(request: Request, view: ProfiledView) -> dict[str, Any]:
    org, profile = view.principal, view.profile
    return {
        "id": str(org.id),
        "org_name": org.name,
        "org_label": profile.full_name,
        "org_contact_name": profile.contact_name,
        "org_email": profile.email,
        "org_url": profile.url or None,
        "org_created_at": org.created_at.isoformat(timespec="seconds"),
        "type_id": profile.org_type or ORG_TYPES[0],
        "stripe_customer_id": None,
        "external_admin_group": None,
        "external_member_group": None,
        "external_id": None,
        "resource_type": "organization",
        "self_link": _link(request, f"/v1/organizations/{org.name}"),
    }


@router.post(
    "/users",
    status_code=201,
    summary="Create a user (admins only)",
    openapi_extra={
        **audited("principal.create"),
        **request_body(UserIn, {"username": NAME_PATTERN, "email": EMAIL_PATTERN}),
    },
)
async def create_user(request: Request, caller: WritePrincipals) -> dict[str, Any]:
    accounts = _accounts(request)
    accounts.check_may_create_users(caller)  # before the body is looked at
    body: UserIn = await _body(request, UserIn)
    trail_of(request).resource = f"principal/{body.username}"
    profile = ProfileChange(
        email=body.email,
        full_name=body.fullname,
        company_name=body.company_name,
        company_role=body.company_role,
    )
    user = await asyncio.to_thread(accounts.create_user, caller, body.username, profile)
    return _user_out(request, user)


@router.get(
    "/organization/types",
    summary="Organization types (recorded, not enforced)",
    openapi_extra=audited("org.types"),
)
async def organization_types(_caller: Authenticated) -> list[dict[str, str]]:
    return [{"id": name, "name": name} for name in ORG_TYPES]


@router.post(
    "/organizations",
    status_code=201,
    summary="Create an organization; you become its owner",
    openapi_extra={
        **audited("org.create"),
        **request_body(
            OrgIn,
            {"org_name": NAME_PATTERN, "org_email": EMAIL_PATTERN, "org_url": URL_PATTERN},
            required=("type_id",),
            type_id={"type": "string", "enum": list(ORG_TYPES)},
        ),
    },
)
async def create_org(request: Request, caller: WritePrincipals) -> dict[str, Any]:
    accounts = _accounts(request)
    accounts.check_may_create_orgs(caller)  # before the body is looked at
    body: OrgIn = await _body(request, OrgIn)
    trail_of(request).resource = f"org/{body.org_name}"
    check_name(body.org_name, "organization")
    if body.type_id is None:
        raise InvalidInput(f"type_id is required: one of {', '.join(ORG_TYPES)}")
    view = await asyncio.to_thread(accounts.create_org, caller, body.org_name, body.change())
    return _org_out(request, view)


@router.put(
    "/organizations/{org}",
    status_code=204,
    response_class=Response,
    summary="Change an organization's label, contact, email, URL or type (owners and admins)",
    openapi_extra=audited("org.update"),
)
async def edit_org(request: Request, caller: WritePrincipals, org: str) -> Response:
    accounts = _accounts(request)
    trail_of(request).resource = f"org/{org}"
    await asyncio.to_thread(accounts.check_manages_org, caller, org)  # before the body
    body: OrgEdit = await _body(request, OrgEdit)
    if body.org_name is not None and body.org_name != org:
        raise BadRequest(f"an organization cannot be renamed ('{org}' to '{body.org_name}')")
    await asyncio.to_thread(accounts.edit_org, caller, org, body.change())
    return Response(status_code=204)


add_routes(
    router,
    lambda platform: platform.accounts,
    Op(
        "GET /organizations/{org}",
        "get_org",
        Accounts.org,
        ReadPrincipals,
        Answer(dict[str, Any], lambda view, request: _org_out(request, view), request=True),
        "org.read",
        summary="An organization (its members and admins)",
    ),
    Op(
        "PUT /organizations/{org}/members/{member}",
        "invite_to_org",
        Accounts.invite,
        WritePrincipals,
        Answer(Response, lambda _none: Response(status_code=204)),
        "org.member_set",
        resource="org/{org}/{member}",
        summary="Make a user or service account a member of an organization (owners and admins)",
        status_code=204,
        options={"response_class": Response},
    ),
)
