"""Algorithmia's users and organizations for its own clients, mapped onto Algora's principals.

The routes ``client.create_user``, ``create_org``, ``get_org``, ``edit_org``,
``invite_to_org`` and ``get_org_types`` reach. An Algorithmia user is an Algora user, an
organization an Algora organization; what Algorithmia says of them beyond a name (email, full
name, label, contact, URL, company, organization type) is kept in a profile that Algora shows
and never acts on. Algora's rules decide who may do what, as on the native API
(:mod:`algora.protocols.native.access`):

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
from sqlalchemy import select
from sqlalchemy.orm import Session

from algora.auth.policy import can_manage_org
from algora.auth.principals import Caller
from algora.db.tables import Membership, Principal, PrincipalProfile, utcnow
from algora.errors import BadRequest, Conflict, InvalidInput, NotFound, PermissionDenied
from algora.gateway.auditing import trail_of
from algora.gateway.deps import platform_of, read_body
from algora.gateway.inputs import decode_json
from algora.gateway.permissions import AUTHENTICATED, Needs, PermissionRoute
from algora.modelfolder.manifest import NAME_PATTERN

__all__ = ["ORG_TYPES", "router"]

router = APIRouter(prefix="/v1", route_class=PermissionRoute, tags=["algorithmia"])
Authenticated = Annotated[Caller, Depends(Needs(AUTHENTICATED))]
ReadPrincipals = Annotated[Caller, Depends(Needs("principals:manage"))]
WritePrincipals = Annotated[Caller, Depends(Needs("principals:manage", write=True))]

ORG_TYPES = ("basic", "legacy", "pro")
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


def _check_name(name: str, what: str) -> None:
    if not NAME_PATTERN.match(name):
        raise BadRequest(
            f"'{name}' cannot be an Algora {what} name: use 1-64 lowercase letters, digits, "
            "'-' or '_', starting with a letter or digit"
        )


def _check_email(email: str | None) -> None:
    if email and ("@" not in email or any(c.isspace() for c in email)):
        raise InvalidInput(f"'{email}' is not an email address")


def _check_url(url: str | None) -> None:
    if url and not url.startswith(("http://", "https://")):
        raise InvalidInput("org_url is an http:// or https:// URL")


def _check_type(type_id: str | None) -> None:
    if type_id is not None and type_id not in ORG_TYPES:
        raise InvalidInput(
            f"type_id '{type_id}' is not an organization type: use one of "
            f"{', '.join(ORG_TYPES)} (GET /v1/organization/types)"
        )


def _link(request: Request, path: str) -> str:
    return str(request.base_url).rstrip("/") + path


def _profile(session: Session, principal: Principal) -> PrincipalProfile:
    profile = session.get(PrincipalProfile, principal.id)
    if profile is None:
        profile = PrincipalProfile(
            principal_id=principal.id,
            email="",
            full_name="",
            contact_name="",
            url="",
            company_name="",
            company_role="",
            org_type="",
        )
        session.add(profile)
    return profile


def _new_principal(session: Session, name: str, kind: str) -> Principal:
    if session.scalars(select(Principal).where(Principal.name == name)).first() is not None:
        raise Conflict(f"'{name}' already exists")
    principal = Principal(name=name, kind=kind)
    session.add(principal)
    session.flush()
    return principal


def _user_out(request: Request, user: Principal, profile: PrincipalProfile) -> dict[str, Any]:
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


def _org_out(request: Request, org: Principal, profile: PrincipalProfile) -> dict[str, Any]:
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


def _apply(profile: PrincipalProfile, fields: OrgFields) -> None:
    _check_email(fields.org_email)
    _check_url(fields.org_url)
    _check_type(fields.type_id)
    if fields.org_label is not None:
        profile.full_name = fields.org_label
    if fields.org_contact_name is not None:
        profile.contact_name = fields.org_contact_name
    if fields.org_email is not None:
        profile.email = fields.org_email
    if fields.org_url is not None:
        profile.url = fields.org_url
    if fields.type_id is not None:
        profile.org_type = fields.type_id
    profile.updated_at = utcnow()


def _visible_org(session: Session, caller: Caller, name: str) -> Principal:
    org = session.scalars(
        select(Principal).where(Principal.name == name, Principal.kind == "org")
    ).first()
    if org is None or not (caller.is_admin or caller.role_in(org.id) is not None):
        raise NotFound(f"no organization '{name}'")
    return org


def _managed_org(session: Session, caller: Caller, name: str) -> Principal:
    org = _visible_org(session, caller, name)
    if not can_manage_org(caller, org.id):
        raise PermissionDenied(f"only owners and admins of '{name}' may change it")
    return org


@router.post("/users", status_code=201, summary="Create a user (admins only)")
async def create_user(request: Request, caller: WritePrincipals) -> dict[str, Any]:
    if not caller.is_admin:
        raise PermissionDenied("only an admin may create users")
    body: UserIn = await _body(request, UserIn)
    trail_of(request).resource = f"principal/{body.username}"
    _check_name(body.username, "user")
    _check_email(body.email)

    def create() -> dict[str, Any]:
        with platform_of(request).sessions() as session:
            user = _new_principal(session, body.username, "user")
            profile = _profile(session, user)
            profile.email = body.email
            profile.full_name = body.fullname
            profile.company_name = body.company_name
            profile.company_role = body.company_role
            session.commit()
            return _user_out(request, user, profile)

    return await asyncio.to_thread(create)


@router.get("/organization/types", summary="Organization types (recorded, not enforced)")
async def organization_types(_caller: Authenticated) -> list[dict[str, str]]:
    return [{"id": name, "name": name} for name in ORG_TYPES]


@router.post(
    "/organizations", status_code=201, summary="Create an organization; you become its owner"
)
async def create_org(request: Request, caller: WritePrincipals) -> dict[str, Any]:
    platform = platform_of(request)
    if caller.kind != "user":
        raise PermissionDenied("only users create organizations")
    body: OrgIn = await _body(request, OrgIn)
    trail_of(request).resource = f"org/{body.org_name}"
    _check_name(body.org_name, "organization")
    if body.type_id is None:
        raise InvalidInput(f"type_id is required: one of {', '.join(ORG_TYPES)}")

    def create() -> dict[str, Any]:
        with platform.sessions() as session:
            org = _new_principal(session, body.org_name, "org")
            profile = _profile(session, org)
            _apply(profile, body)
            session.add(Membership(org_id=org.id, member_id=caller.principal_id, role="owner"))
            session.commit()
            return _org_out(request, org, profile)

    out = await asyncio.to_thread(create)
    platform.authenticator.forget()  # the creator's cached roles
    return out


@router.get("/organizations/{org}", summary="An organization (its members and admins)")
async def get_org(request: Request, caller: ReadPrincipals, org: str) -> dict[str, Any]:
    def load() -> dict[str, Any]:
        with platform_of(request).sessions() as session:
            found = _visible_org(session, caller, org)
            profile = session.get(PrincipalProfile, found.id) or PrincipalProfile(
                email="", full_name="", contact_name="", url="", org_type=""
            )
            return _org_out(request, found, profile)

    return await asyncio.to_thread(load)


@router.put(
    "/organizations/{org}",
    status_code=204,
    response_class=Response,
    summary="Change an organization's label, contact, email, URL or type (owners and admins)",
)
async def edit_org(request: Request, caller: WritePrincipals, org: str) -> Response:
    sessions = platform_of(request).sessions
    trail_of(request).resource = f"org/{org}"

    def may_change() -> None:  # before the body is looked at
        with sessions() as session:
            _managed_org(session, caller, org)

    await asyncio.to_thread(may_change)
    body: OrgEdit = await _body(request, OrgEdit)
    if body.org_name is not None and body.org_name != org:
        raise BadRequest(f"an organization cannot be renamed ('{org}' to '{body.org_name}')")

    def change() -> None:
        with sessions() as session:
            _apply(_profile(session, _managed_org(session, caller, org)), body)
            session.commit()

    await asyncio.to_thread(change)
    return Response(status_code=204)


@router.put(
    "/organizations/{org}/members/{member}",
    status_code=204,
    response_class=Response,
    summary="Make a user or service account a member of an organization (owners and admins)",
)
async def invite_to_org(
    request: Request, caller: WritePrincipals, org: str, member: str
) -> Response:
    platform = platform_of(request)
    trail_of(request).resource = f"org/{org}/{member}"

    def invite() -> None:
        with platform.sessions() as session:
            found = _managed_org(session, caller, org)
            invited = session.scalars(select(Principal).where(Principal.name == member)).first()
            if invited is None:
                raise NotFound(f"no user '{member}'")
            if invited.kind == "org":
                raise BadRequest("an organization cannot be a member of another")
            current = session.scalars(
                select(Membership).where(
                    Membership.org_id == found.id, Membership.member_id == invited.id
                )
            ).first()
            if current is None:  # an existing member keeps its role
                session.add(Membership(org_id=found.id, member_id=invited.id, role="member"))
                session.commit()

    await asyncio.to_thread(invite)
    platform.authenticator.forget()
    platform.calls.forget()
    return Response(status_code=204)
