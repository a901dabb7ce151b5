"""Who is who and who may do what: users, service accounts, organizations, memberships and
per-model grants, under ``/api/v1``.

Users are created by admins; any user may create an organization (and becomes its owner);
an organization's owners and admins manage its members and service accounts. Grants give a
user, service account or organization ``call`` or ``manage`` rights on one model; the model's
managers change them. Every change here is recorded in the audit log.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from algora.auth.accounts import Accounts, NewUser
from algora.auth.policy import Role
from algora.auth.principals import Caller
from algora.gateway.permissions import Needs, PermissionRoute
from algora.protocols.native.keys import LimitsIn
from algora.protocols.routing import NOTHING, Answer, Op, Takes, add_routes, each, one
from algora.protocols.wire import FromView

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


class PrincipalOut(FromView):
    name: str
    kind: str
    is_admin: bool
    rate_per_second: float | None
    burst: int | None
    owner: str | None = None


class NewPrincipalOut(BaseModel):
    name: str
    key_id: str
    key: str

    @classmethod
    def of(cls, new: NewUser) -> NewPrincipalOut:
        return cls(name=new.user.name, key_id=new.key_id, key=new.secret)


class MemberIn(BaseModel):
    role: Role


class MemberOut(FromView):
    org: str
    member: str
    kind: str
    role: str


class GrantIn(BaseModel):
    right: Literal["call", "manage"]


class GrantOut(FromView):
    model: str
    principal: str
    kind: str
    right: str


# users and service accounts ---------------------------------------------------------------------
add_routes(
    router,
    lambda platform: platform.accounts,
    Op(
        "POST /principals",
        "create_principal",
        Accounts.create_user_with_key,
        WritePrincipals,
        one(NewPrincipalOut),
        "principal.create",
        body=Takes(PrincipalIn, lambda body: (body.name,)),
        resource="principal/{body.name}",
        summary="Create a user and its first key (admin only)",
        status_code=201,
    ),
    Op(
        "GET /principals",
        "list_principals",
        Accounts.principals,
        ReadPrincipals,
        each(PrincipalOut),
        "principal.list",
        summary="Principals you can see: all for an admin; else you, your organizations and "
        "the service accounts you manage",
    ),
    Op(
        "POST /service-accounts",
        "create_service_account",
        Accounts.create_service_account,
        WritePrincipals,
        one(PrincipalOut),
        "principal.create_service",
        body=Takes(ServiceAccountIn, lambda body: (body.name, body.owner)),
        resource="principal/{body.name}",
        summary="Create a service account owned by you or by an organization you administer",
        status_code=201,
    ),
    Op(
        "PATCH /principals/{name}",
        "limit_principal",
        Accounts.limit_principal,
        WritePrincipals,
        one(PrincipalOut),
        "principal.limit",
        body=Takes(LimitsIn, lambda body: (body.change(),)),
        resource="principal/{name}",
        summary="Set the default rate limit of a principal's keys (admin only)",
    ),
    tags=("principals",),
)


# organizations ----------------------------------------------------------------------------------
add_routes(
    router,
    lambda platform: platform.accounts,
    Op(
        "POST /orgs",
        "create_org",
        Accounts.create_org,
        WritePrincipals,
        Answer(PrincipalOut, lambda view: PrincipalOut.of(view.principal)),
        "org.create",
        body=Takes(PrincipalIn, lambda body: (body.name,)),
        resource="org/{body.name}",
        summary="Create an organization; you become its owner",
        status_code=201,
    ),
    Op(
        "GET /orgs",
        "list_orgs",
        Accounts.orgs,
        ReadPrincipals,
        each(PrincipalOut),
        "org.list",
        summary="Organizations: yours (an admin: all)",
    ),
    Op(
        "GET /orgs/{org}/members",
        "list_members",
        Accounts.members,
        ReadPrincipals,
        each(MemberOut),
        "org.member_list",
        summary="An organization's members and their roles (members and admins)",
    ),
    Op(
        "PUT /orgs/{org}/members/{member}",
        "set_member",
        Accounts.set_member,
        WritePrincipals,
        each(MemberOut),
        "org.member_set",
        body=Takes(MemberIn, lambda body: (body.role,)),
        resource="org/{org}/{member}",
        summary="Add a member (user or service account) or change its role",
    ),
    Op(
        "DELETE /orgs/{org}/members/{member}",
        "remove_member",
        Accounts.remove_member,
        WritePrincipals,
        NOTHING,
        "org.member_remove",
        resource="org/{org}/{member}",
        summary="Remove a member from an organization",
        status_code=204,
    ),
    tags=("organizations",),
)


# grants -----------------------------------------------------------------------------------------
add_routes(
    router,
    lambda platform: platform.accounts,
    Op(
        "GET /models/{owner}/{name}/grants",
        "list_grants",
        Accounts.grants,
        ReadGrants,
        each(GrantOut),
        "model.grant_list",
        summary="Who holds explicit rights on a model (its managers)",
    ),
    Op(
        "PUT /models/{owner}/{name}/grants/{principal}",
        "set_grant",
        Accounts.set_grant,
        ManageModels,
        each(GrantOut),
        "model.grant",
        body=Takes(GrantIn, lambda body: (body.right,)),
        summary="Give a user, service account or organization call or manage rights on a model",
    ),
    Op(
        "DELETE /models/{owner}/{name}/grants/{principal}",
        "remove_grant",
        Accounts.remove_grant,
        ManageModels,
        NOTHING,
        "model.revoke_grant",
        summary="Take back a principal's explicit rights on a model",
        status_code=204,
    ),
    tags=("models",),
)
