"""Who is who and who may do what: users, service accounts, organizations, memberships and
per-model grants, under ``/api/v1``.

Users are created by admins; any user may create an organization (and becomes its owner);
an organization's owners and admins manage its members and service accounts. Grants give a
user, service account or organization ``call`` or ``manage`` rights on one model; the model's
managers change them. Every change here is recorded in the audit log.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from algora.auth.accounts import Accounts, GrantView, MemberView, PrincipalView
from algora.auth.policy import Role
from algora.auth.principals import Caller
from algora.gateway.auditing import trail_of
from algora.gateway.deps import platform_of
from algora.gateway.permissions import Needs, PermissionRoute, audited
from algora.protocols.native.keys import LimitsIn

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", route_class=PermissionRoute)
ReadPrincipals = Annotated[Caller, Depends(Needs("principals:manage"))]
WritePrincipals = Annotated[Caller, Depends(Needs("principals:manage", write=True))]
ManageModels = Annotated[Caller, Depends(Needs("models:manage", write=True))]
ReadGrants = Annotated[Caller, Depends(Needs("models:manage"))]


class PrincipalIn(BaseModel):
    name: str = Field(max_length=64)


class ServiceAccountIn(BaseModel):
    name: str = Field(max_length=64)
    owner: str | None = Field(
        default=None, max_length=64, description="An organization you administer; default: you."
    )


class PrincipalOut(BaseModel):
    name: str
    kind: str
    is_admin: bool
    rate_per_second: float | None
    burst: int | None
    owner: str | None = None

    @classmethod
    def of(cls, view: PrincipalView) -> PrincipalOut:
        return cls.model_validate(view, from_attributes=True)  # the same fields, by name


class NewPrincipalOut(BaseModel):
    name: str
    key_id: str
    key: str


class MemberIn(BaseModel):
    role: Role


class MemberOut(BaseModel):
    org: str
    member: str
    kind: str
    role: str

    @classmethod
    def of(cls, view: MemberView) -> MemberOut:
        return cls(org=view.org, member=view.member, kind=view.kind, role=view.role)


class GrantIn(BaseModel):
    right: Literal["call", "manage"]


class GrantOut(BaseModel):
    model: str
    principal: str
    kind: str
    right: str

    @classmethod
    def of(cls, view: GrantView) -> GrantOut:
        return cls(model=view.model, principal=view.principal, kind=view.kind, right=view.right)


def _accounts(request: Request) -> Accounts:
    return platform_of(request).accounts


# users and service accounts -----------------------------------------------------------------
@router.post(
    "/principals",
    status_code=201,
    tags=["principals"],
    summary="Create a user and its first key (admin only)",
    openapi_extra=audited("principal.create"),
)
async def create_principal(
    request: Request, caller: WritePrincipals, body: PrincipalIn
) -> NewPrincipalOut:
    trail_of(request).resource = f"principal/{body.name}"
    new = await asyncio.to_thread(_accounts(request).create_user_with_key, caller, body.name)
    return NewPrincipalOut(name=body.name, key_id=new.key_id, key=new.secret)


@router.get(
    "/principals",
    tags=["principals"],
    summary="Principals you can see: all for an admin; else you, your organizations and "
    "the service accounts you manage",
    openapi_extra=audited("principal.list"),
)
async def list_principals(request: Request, caller: ReadPrincipals) -> list[PrincipalOut]:
    views = await asyncio.to_thread(_accounts(request).principals, caller)
    return [PrincipalOut.of(v) for v in views]


@router.post(
    "/service-accounts",
    status_code=201,
    tags=["principals"],
    summary="Create a service account owned by you or by an organization you administer",
    openapi_extra=audited("principal.create_service"),
)
async def create_service_account(
    request: Request, caller: WritePrincipals, body: ServiceAccountIn
) -> PrincipalOut:
    trail_of(request).resource = f"principal/{body.name}"
    view = await asyncio.to_thread(
        _accounts(request).create_service_account, caller, body.name, body.owner
    )
    return PrincipalOut.of(view)


@router.patch(
    "/principals/{name}",
    tags=["principals"],
    summary="Set the default rate limit of a principal's keys (admin only)",
    openapi_extra=audited("principal.limit"),
)
async def limit_principal(
    request: Request, caller: WritePrincipals, name: str, body: LimitsIn
) -> PrincipalOut:
    trail_of(request).resource = f"principal/{name}"
    view = await asyncio.to_thread(_accounts(request).limit_principal, caller, name, body.change())
    return PrincipalOut.of(view)


# organizations ------------------------------------------------------------------------------
@router.post(
    "/orgs",
    status_code=201,
    tags=["organizations"],
    summary="Create an organization; you become its owner",
    openapi_extra=audited("org.create"),
)
async def create_org(request: Request, caller: WritePrincipals, body: PrincipalIn) -> PrincipalOut:
    trail_of(request).resource = f"org/{body.name}"
    view = await asyncio.to_thread(_accounts(request).create_org, caller, body.name)
    return PrincipalOut.of(view.principal)


@router.get(
    "/orgs",
    tags=["organizations"],
    summary="Organizations: yours (an admin: all)",
    openapi_extra=audited("org.list"),
)
async def list_orgs(request: Request, caller: ReadPrincipals) -> list[PrincipalOut]:
    views = await asyncio.to_thread(_accounts(request).orgs, caller)
    return [PrincipalOut.of(v) for v in views]


@router.get(
    "/orgs/{org}/members",
    tags=["organizations"],
    summary="An organization's members and their roles (members and admins)",
    openapi_extra=audited("org.member_list"),
)
async def list_members(request: Request, caller: ReadPrincipals, org: str) -> list[MemberOut]:
    views = await asyncio.to_thread(_accounts(request).members, caller, org)
    return [MemberOut.of(v) for v in views]


@router.put(
    "/orgs/{org}/members/{member}",
    tags=["organizations"],
    summary="Add a member (user or service account) or change its role",
    openapi_extra=audited("org.member_set"),
)
async def set_member(
    request: Request, caller: WritePrincipals, org: str, member: str, body: MemberIn
) -> list[MemberOut]:
    trail_of(request).resource = f"org/{org}/{member}"
    views = await asyncio.to_thread(_accounts(request).set_member, caller, org, member, body.role)
    return [MemberOut.of(v) for v in views]


@router.delete(
    "/orgs/{org}/members/{member}",
    status_code=204,
    tags=["organizations"],
    summary="Remove a member from an organization",
    openapi_extra=audited("org.member_remove"),
)
async def remove_member(request: Request, caller: WritePrincipals, org: str, member: str) -> None:
    trail_of(request).resource = f"org/{org}/{member}"
    await asyncio.to_thread(_accounts(request).remove_member, caller, org, member)


# grants -------------------------------------------------------------------------------------
@router.get(
    "/models/{owner}/{name}/grants",
    tags=["models"],
    summary="Who holds explicit rights on a model (its managers)",
    openapi_extra=audited("model.grant_list"),
)
async def list_grants(
    request: Request, caller: ReadGrants, owner: str, name: str
) -> list[GrantOut]:
    views = await asyncio.to_thread(_accounts(request).grants, caller, owner, name)
    return [GrantOut.of(v) for v in views]


@router.put(
    "/models/{owner}/{name}/grants/{principal}",
    tags=["models"],
    summary="Give a user, service account or organization call or manage rights on a model",
    openapi_extra=audited("model.grant"),
)
async def set_grant(
    request: Request, caller: ManageModels, owner: str, name: str, principal: str, body: GrantIn
) -> list[GrantOut]:
    views = await asyncio.to_thread(
        _accounts(request).set_grant, caller, owner, name, principal, body.right
    )
    return [GrantOut.of(v) for v in views]


@router.delete(
    "/models/{owner}/{name}/grants/{principal}",
    status_code=204,
    tags=["models"],
    summary="Take back a principal's explicit rights on a model",
    openapi_extra=audited("model.revoke_grant"),
)
async def remove_grant(
    request: Request, caller: ManageModels, owner: str, name: str, principal: str
) -> None:
    await asyncio.to_thread(_accounts(request).remove_grant, caller, owner, name, principal)
