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
from sqlalchemy import select
from sqlalchemy.orm import Session

from algora.auth.bootstrap import create_key
from algora.auth.policy import ROLES, Role, can_manage_org, require
from algora.auth.principals import Caller
from algora.db.tables import Grant, Membership, Principal
from algora.errors import BadRequest, Conflict, NotFound, PermissionDenied
from algora.gateway.auditing import trail_of
from algora.gateway.deps import platform_of
from algora.gateway.permissions import Needs, PermissionRoute
from algora.modelfolder.manifest import NAME_PATTERN
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


class GrantIn(BaseModel):
    right: Literal["call", "manage"]


class GrantOut(BaseModel):
    model: str
    principal: str
    kind: str
    right: str


def _check_name(name: str, what: str) -> None:
    if not NAME_PATTERN.match(name):
        raise BadRequest(f"a {what} name is 1-64 lowercase letters, digits, '-' or '_'")


def _find(session: Session, name: str, kind: str | None = None) -> Principal:
    principal = session.scalars(select(Principal).where(Principal.name == name)).first()
    if principal is None or (kind is not None and principal.kind != kind):
        raise NotFound(f"no {kind or 'principal'} '{name}'")
    return principal


def _new_principal(session: Session, name: str, kind: str, owner_id: int | None) -> Principal:
    if session.scalars(select(Principal).where(Principal.name == name)).first() is not None:
        raise Conflict(f"'{name}' already exists")
    principal = Principal(name=name, kind=kind, owner_id=owner_id)
    session.add(principal)
    session.flush()
    return principal


def _principal_out(session: Session, principal: Principal) -> PrincipalOut:
    owner = session.get(Principal, principal.owner_id) if principal.owner_id else None
    return PrincipalOut(
        name=principal.name,
        kind=principal.kind,
        is_admin=principal.is_admin,
        rate_per_second=principal.rate_per_second,
        burst=principal.burst,
        owner=owner.name if owner else None,
    )


# users and service accounts -----------------------------------------------------------------
@router.post(
    "/principals",
    response_model=NewPrincipalOut,
    status_code=201,
    tags=["principals"],
    summary="Create a user and its first key (admin only)",
)
async def create_principal(
    request: Request, caller: WritePrincipals, body: PrincipalIn
) -> NewPrincipalOut:
    trail_of(request).resource = f"principal/{body.name}"
    if not caller.is_admin:
        raise PermissionDenied("only an admin may create users")
    _check_name(body.name, "user")

    def create() -> NewPrincipalOut:
        with platform_of(request).sessions() as session:
            principal = _new_principal(session, body.name, "user", None)
            new = create_key(session, principal, "first key")
            session.commit()
            return NewPrincipalOut(name=body.name, key_id=new.key_id, key=new.secret)

    return await asyncio.to_thread(create)


@router.get(
    "/principals",
    response_model=list[PrincipalOut],
    tags=["principals"],
    summary="Principals you can see: all for an admin; else you, your organizations and "
    "the service accounts you manage",
)
async def list_principals(request: Request, caller: ReadPrincipals) -> list[PrincipalOut]:
    def load() -> list[PrincipalOut]:
        with platform_of(request).sessions() as session:
            rows = session.scalars(select(Principal).order_by(Principal.name)).all()
            mine = {org for org, _role in caller.memberships}
            visible = [
                p
                for p in rows
                if caller.is_admin
                or p.id == caller.principal_id
                or p.id in mine
                or (
                    p.kind == "service"
                    and p.owner_id is not None
                    and (p.owner_id == caller.principal_id or can_manage_org(caller, p.owner_id))
                )
            ]
            return [_principal_out(session, p) for p in visible]

    return await asyncio.to_thread(load)


@router.post(
    "/service-accounts",
    response_model=PrincipalOut,
    status_code=201,
    tags=["principals"],
    summary="Create a service account owned by you or by an organization you administer",
)
async def create_service_account(
    request: Request, caller: WritePrincipals, body: ServiceAccountIn
) -> PrincipalOut:
    trail_of(request).resource = f"principal/{body.name}"
    _check_name(body.name, "service account")

    def create() -> PrincipalOut:
        with platform_of(request).sessions() as session:
            if body.owner is None:
                owner = session.get(Principal, caller.principal_id)
                if owner is None:
                    raise NotFound("the caller no longer exists")
            else:
                owner = _find(session, body.owner)
                if owner.id != caller.principal_id and not (
                    owner.kind == "org" and can_manage_org(caller, owner.id)
                ):
                    raise PermissionDenied(
                        f"only admins of '{body.owner}' may create its service accounts"
                    )
            if owner.kind == "service":
                raise BadRequest("a service account cannot own another")
            principal = _new_principal(session, body.name, "service", owner.id)
            session.commit()
            return _principal_out(session, principal)

    return await asyncio.to_thread(create)


@router.patch(
    "/principals/{name}",
    response_model=PrincipalOut,
    tags=["principals"],
    summary="Set the default rate limit of a principal's keys (admin only)",
)
async def limit_principal(
    request: Request, caller: WritePrincipals, name: str, body: LimitsIn
) -> PrincipalOut:
    platform = platform_of(request)
    trail_of(request).resource = f"principal/{name}"
    if not caller.is_admin:
        raise PermissionDenied("only an admin may set a principal's default rate limit")

    def change() -> PrincipalOut:
        with platform.sessions() as session:
            principal = session.scalars(select(Principal).where(Principal.name == name)).first()
            if principal is None:
                raise NotFound(f"no principal '{name}'")
            if "rate_per_second" in body.model_fields_set:
                principal.rate_per_second = body.rate_per_second
            if "burst" in body.model_fields_set:
                principal.burst = body.burst
            session.commit()
            return _principal_out(session, principal)

    out = await asyncio.to_thread(change)
    platform.authenticator.forget()
    return out


# organizations ------------------------------------------------------------------------------
@router.post(
    "/orgs",
    response_model=PrincipalOut,
    status_code=201,
    tags=["organizations"],
    summary="Create an organization; you become its owner",
)
async def create_org(request: Request, caller: WritePrincipals, body: PrincipalIn) -> PrincipalOut:
    platform = platform_of(request)
    trail_of(request).resource = f"org/{body.name}"
    _check_name(body.name, "organization")
    if caller.kind != "user":
        raise PermissionDenied("only users create organizations")

    def create() -> PrincipalOut:
        with platform.sessions() as session:
            org = _new_principal(session, body.name, "org", None)
            session.add(Membership(org_id=org.id, member_id=caller.principal_id, role="owner"))
            session.commit()
            return _principal_out(session, org)

    out = await asyncio.to_thread(create)
    platform.authenticator.forget()  # the creator's cached roles
    return out


@router.get(
    "/orgs",
    response_model=list[PrincipalOut],
    tags=["organizations"],
    summary="Organizations: yours (an admin: all)",
)
async def list_orgs(request: Request, caller: ReadPrincipals) -> list[PrincipalOut]:
    def load() -> list[PrincipalOut]:
        with platform_of(request).sessions() as session:
            statement = select(Principal).where(Principal.kind == "org").order_by(Principal.name)
            mine = {org for org, _role in caller.memberships}
            return [
                _principal_out(session, org)
                for org in session.scalars(statement).all()
                if caller.is_admin or org.id in mine
            ]

    return await asyncio.to_thread(load)


def _visible_org(session: Session, caller: Caller, name: str) -> Principal:
    org = _find(session, name, "org")
    if not caller.is_admin and caller.role_in(org.id) is None:
        raise NotFound(f"no org '{name}'")
    return org


def _members(session: Session, org: Principal) -> list[MemberOut]:
    rows = session.execute(
        select(Membership, Principal)
        .join(Principal, Principal.id == Membership.member_id)
        .where(Membership.org_id == org.id)
        .order_by(Principal.name)
    ).all()
    return [MemberOut(org=org.name, member=p.name, kind=p.kind, role=m.role) for m, p in rows]


@router.get(
    "/orgs/{org}/members",
    response_model=list[MemberOut],
    tags=["organizations"],
    summary="An organization's members and their roles (members and admins)",
)
async def list_members(request: Request, caller: ReadPrincipals, org: str) -> list[MemberOut]:
    def load() -> list[MemberOut]:
        with platform_of(request).sessions() as session:
            return _members(session, _visible_org(session, caller, org))

    return await asyncio.to_thread(load)


def _owners(session: Session, org_id: int) -> int:
    statement = select(Membership).where(Membership.org_id == org_id, Membership.role == "owner")
    return len(session.scalars(statement).all())


def _check_member_change(
    session: Session, caller: Caller, org: Principal, current: Membership | None, role: str | None
) -> None:
    """Owners and admins manage members; only owners touch owners; one owner always stays."""
    if not can_manage_org(caller, org.id):
        raise PermissionDenied(f"only owners and admins of '{org.name}' manage its members")
    touches_owner = role == "owner" or (current is not None and current.role == "owner")
    if touches_owner and not (caller.is_admin or caller.role_in(org.id) == "owner"):
        raise PermissionDenied(f"only owners of '{org.name}' add or change owners")
    demotes_owner = current is not None and current.role == "owner" and role != "owner"
    if demotes_owner and _owners(session, org.id) <= 1:
        raise Conflict(f"'{org.name}' must keep at least one owner")


@router.put(
    "/orgs/{org}/members/{member}",
    response_model=list[MemberOut],
    tags=["organizations"],
    summary="Add a member (user or service account) or change its role",
)
async def set_member(
    request: Request, caller: WritePrincipals, org: str, member: str, body: MemberIn
) -> list[MemberOut]:
    platform = platform_of(request)
    trail_of(request).resource = f"org/{org}/{member}"
    if body.role not in ROLES:
        raise BadRequest(f"a role is one of {', '.join(ROLES)}")

    def change() -> list[MemberOut]:
        with platform.sessions() as session:
            target = _visible_org(session, caller, org)
            principal = _find(session, member)
            if principal.kind == "org":
                raise BadRequest("an organization cannot be a member of another")
            current = session.scalars(
                select(Membership).where(
                    Membership.org_id == target.id, Membership.member_id == principal.id
                )
            ).first()
            _check_member_change(session, caller, target, current, body.role)
            if current is None:
                session.add(Membership(org_id=target.id, member_id=principal.id, role=body.role))
            else:
                current.role = body.role
            session.commit()
            return _members(session, target)

    out = await asyncio.to_thread(change)
    platform.authenticator.forget()
    platform.calls.forget()
    return out


@router.delete(
    "/orgs/{org}/members/{member}",
    status_code=204,
    tags=["organizations"],
    summary="Remove a member from an organization",
)
async def remove_member(request: Request, caller: WritePrincipals, org: str, member: str) -> None:
    platform = platform_of(request)
    trail_of(request).resource = f"org/{org}/{member}"

    def change() -> None:
        with platform.sessions() as session:
            target = _visible_org(session, caller, org)
            principal = _find(session, member)
            current = session.scalars(
                select(Membership).where(
                    Membership.org_id == target.id, Membership.member_id == principal.id
                )
            ).first()
            if current is None:
                raise NotFound(f"'{member}' is not a member of '{org}'")
            _check_member_change(session, caller, target, current, None)
            session.delete(current)
            session.commit()

    await asyncio.to_thread(change)
    platform.authenticator.forget()
    platform.calls.forget()


# grants -------------------------------------------------------------------------------------
def _grants_out(session: Session, model_name: str, model_id: int) -> list[GrantOut]:
    rows = session.execute(
        select(Grant, Principal)
        .join(Principal, Principal.id == Grant.grantee_id)
        .where(Grant.model_id == model_id)
        .order_by(Principal.name)
    ).all()
    return [
        GrantOut(model=model_name, principal=p.name, kind=p.kind, right=g.right) for g, p in rows
    ]


@router.get(
    "/models/{owner}/{name}/grants",
    response_model=list[GrantOut],
    tags=["models"],
    summary="Who holds explicit rights on a model (its managers)",
)
async def list_grants(
    request: Request, caller: ReadGrants, owner: str, name: str
) -> list[GrantOut]:
    platform = platform_of(request)

    def load() -> list[GrantOut]:
        with platform.sessions() as session:
            model = platform.registry.find_model(session, owner, name)
            require(caller, "manage", model)
            return _grants_out(session, f"{owner}/{name}", model.id)

    return await asyncio.to_thread(load)


@router.put(
    "/models/{owner}/{name}/grants/{principal}",
    response_model=list[GrantOut],
    tags=["models"],
    summary="Give a user, service account or organization call or manage rights on a model",
)
async def set_grant(
    request: Request, caller: ManageModels, owner: str, name: str, principal: str, body: GrantIn
) -> list[GrantOut]:
    platform = platform_of(request)

    def change() -> list[GrantOut]:
        with platform.sessions() as session:
            model = platform.registry.find_model(session, owner, name)
            require(caller, "manage", model)
            grantee = _find(session, principal)
            grant = session.scalars(
                select(Grant).where(Grant.model_id == model.id, Grant.grantee_id == grantee.id)
            ).first()
            if grant is None:
                session.add(Grant(model_id=model.id, grantee_id=grantee.id, right=body.right))
            else:
                grant.right = body.right
            session.commit()
            return _grants_out(session, f"{owner}/{name}", model.id)

    out = await asyncio.to_thread(change)
    platform.calls.forget()
    return out


@router.delete(
    "/models/{owner}/{name}/grants/{principal}",
    status_code=204,
    tags=["models"],
    summary="Take back a principal's explicit rights on a model",
)
async def remove_grant(
    request: Request, caller: ManageModels, owner: str, name: str, principal: str
) -> None:
    platform = platform_of(request)

    def change() -> None:
        with platform.sessions() as session:
            model = platform.registry.find_model(session, owner, name)
            require(caller, "manage", model)
            grantee = _find(session, principal)
            grant = session.scalars(
                select(Grant).where(Grant.model_id == model.id, Grant.grantee_id == grantee.id)
            ).first()
            if grant is None:
                raise NotFound(f"'{principal}' holds no grant on '{owner}/{name}'")
            session.delete(grant)
            session.commit()

    await asyncio.to_thread(change)
    platform.calls.forget()
