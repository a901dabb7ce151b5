"""Who is who and who may do what: users, service accounts, organizations, their members, and
explicit grants on models. The native API and Algorithmia's both act through this one service.

- Only admins create users and set a principal's default rate limit.
- Any user creates an organization and becomes its owner. An organization is seen by its
  members (others: not found); its owners and admins manage its members and service accounts;
  only owners add or change owners, and one owner always stays.
- A service account belongs to the user who creates it, or to an organization that user
  administers; it cannot own another.
- A model's managers give and take back ``call`` or ``manage`` grants on it.
- A caller sees every principal if an admin; else itself, its organizations and the service
  accounts it manages.

Each method opens its own session and returns frozen views. A change that cached callers or
cached call resolutions would miss (roles, limits, grants) forgets those caches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.bootstrap import create_key
from algora.auth.keyring import LimitChange
from algora.auth.policy import ROLES, can_manage_org, can_manage_principal, require
from algora.auth.principals import Caller
from algora.auth.profiles import ProfileChange, ProfileView, apply_profile, profile_of
from algora.db.tables import Grant, Membership, Model, Principal
from algora.errors import BadRequest, Conflict, NotFound, PermissionDenied
from algora.modelfolder.manifest import NAME_PATTERN

__all__ = [
    "Accounts",
    "GrantView",
    "MemberView",
    "ModelLookup",
    "NewUser",
    "PrincipalView",
    "ProfiledView",
    "check_name",
]

GRANT_RIGHTS = ("call", "manage")


def check_name(name: str, what: str) -> str:
    """The name of a new user, organization or service account, or BadRequest."""
    if not NAME_PATTERN.match(name):
        raise BadRequest(
            f"'{name[:80]}' cannot be an Algora {what} name: use 1-64 lowercase letters, "
            "digits, '-' or '_', starting with a letter or digit"
        )
    return name


class ModelLookup(Protocol):
    """Finds a model by name in a session, or raises ModelNotFound (the registry does)."""

    def find_model(self, session: Session, owner: str, name: str) -> Model: ...


@dataclass(frozen=True)
class PrincipalView:
    id: int
    name: str
    kind: str
    """``user``, ``org`` or ``service``."""
    is_admin: bool
    created_at: datetime
    rate_per_second: float | None
    burst: int | None
    owner: str | None
    """A service account's owner (a user or an organization)."""


@dataclass(frozen=True)
class ProfiledView:
    principal: PrincipalView
    profile: ProfileView


@dataclass(frozen=True)
class NewUser:
    user: PrincipalView
    key_id: str
    secret: str
    """The first key's secret, shown once."""


@dataclass(frozen=True)
class MemberView:
    org: str
    member: str
    kind: str
    role: str


@dataclass(frozen=True)
class GrantView:
    model: str
    principal: str
    kind: str
    right: str


class Accounts:
    """Principals, organizations, memberships and grants; each method opens its own session."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        models: ModelLookup,
        *,
        forget_callers: Callable[[], None],
        forget_rights: Callable[[], None],
    ) -> None:
        self._sessions = sessions
        self._models = models
        self._forget_callers = forget_callers
        self._forget_rights = forget_rights

    # users and service accounts -----------------------------------------------------------
    def check_may_create_users(self, caller: Caller) -> None:
        if not caller.is_admin:
            raise PermissionDenied("only an admin may create users")

    def create_user(
        self, caller: Caller, name: str, profile: ProfileChange | None = None
    ) -> ProfiledView:
        """A new user without a key (an admin makes its first), with a profile if given."""
        self.check_may_create_users(caller)
        check_name(name, "user")
        if profile is not None:
            profile.check()
        with self._sessions() as session:
            user = _new_principal(session, name, "user")
            view = apply_profile(session, user, profile) if profile else ProfileView()
            session.commit()
            return ProfiledView(_view(session, user), view)

    def create_user_with_key(self, caller: Caller, name: str) -> NewUser:
        """A new user and its first key, whose secret is shown once."""
        self.check_may_create_users(caller)
        check_name(name, "user")
        with self._sessions() as session:
            user = _new_principal(session, name, "user")
            key = create_key(session, user, "first key")
            session.commit()
            return NewUser(_view(session, user), key.key_id, key.secret)

    def create_service_account(
        self, caller: Caller, name: str, owner: str | None = None
    ) -> PrincipalView:
        """A service account of the caller's, or of an organization the caller administers."""
        check_name(name, "service account")
        with self._sessions() as session:
            if owner is None:
                found = session.get(Principal, caller.principal_id)
                if found is None:
                    raise NotFound("the caller no longer exists")
            else:
                found = session.scalars(select(Principal).where(Principal.name == owner)).first()
                if found is None or not _sees(caller, found):
                    # The same answer whether it exists or not: nothing to learn about names.
                    raise NotFound(
                        f"no organization '{owner}' of yours: a service account belongs to "
                        "you or to an organization you administer"
                    )
                if found.id != caller.principal_id and not (
                    found.kind == "org" and can_manage_org(caller, found.id)
                ):
                    raise PermissionDenied(
                        f"only admins of '{owner}' may create its service accounts"
                    )
            if found.kind == "service":
                raise BadRequest("a service account cannot own another")
            principal = _new_principal(session, name, "service", found.id)
            session.commit()
            return _view(session, principal)

    def principals(self, caller: Caller) -> list[PrincipalView]:
        """All for an admin; else the caller, its organizations and the service accounts it
        manages."""
        with self._sessions() as session:
            rows = session.scalars(select(Principal).order_by(Principal.name)).all()
            return [_view(session, p) for p in rows if _sees(caller, p)]

    def limit_principal(self, caller: Caller, name: str, change: LimitChange) -> PrincipalView:
        """Set the default rate limit of a principal's keys (admins only)."""
        if not caller.is_admin:
            raise PermissionDenied("only an admin may set a principal's default rate limit")
        with self._sessions() as session:
            principal = _find(session, name)
            principal.rate_per_second, principal.burst = change.applied(
                principal.rate_per_second, principal.burst
            )
            session.commit()
            view = _view(session, principal)
        self._forget_callers()
        return view

    # organizations ------------------------------------------------------------------------
    def check_may_create_orgs(self, caller: Caller) -> None:
        if caller.kind != "user":
            raise PermissionDenied("only users create organizations")

    def create_org(
        self, caller: Caller, name: str, profile: ProfileChange | None = None
    ) -> ProfiledView:
        """A new organization whose owner is the caller (a user)."""
        check_name(name, "organization")
        self.check_may_create_orgs(caller)
        if profile is not None:
            profile.check()
        with self._sessions() as session:
            org = _new_principal(session, name, "org")
            view = apply_profile(session, org, profile) if profile else ProfileView()
            session.add(Membership(org_id=org.id, member_id=caller.principal_id, role="owner"))
            session.commit()
            out = ProfiledView(_view(session, org), view)
        self._forget_callers()  # the creator's cached roles
        return out

    def orgs(self, caller: Caller) -> list[PrincipalView]:
        """The caller's organizations (an admin: all)."""
        with self._sessions() as session:
            statement = select(Principal).where(Principal.kind == "org").order_by(Principal.name)
            mine = {org for org, _role in caller.memberships}
            return [
                _view(session, org)
                for org in session.scalars(statement).all()
                if caller.is_admin or org.id in mine
            ]

    def org(self, caller: Caller, name: str) -> ProfiledView:
        with self._sessions() as session:
            org = _visible_org(session, caller, name)
            return ProfiledView(_view(session, org), profile_of(session, org))

    def check_manages_org(self, caller: Caller, name: str) -> None:
        """Raise unless the caller may change the organization (not found to strangers)."""
        with self._sessions() as session:
            _managed_org(session, caller, name)

    def edit_org(self, caller: Caller, name: str, change: ProfileChange) -> ProfiledView:
        """Change an organization's profile (its owners and admins)."""
        with self._sessions() as session:
            org = _managed_org(session, caller, name)
            change.check()
            view = apply_profile(session, org, change)
            session.commit()
            return ProfiledView(_view(session, org), view)

    # members ------------------------------------------------------------------------------
    def members(self, caller: Caller, org: str) -> list[MemberView]:
        with self._sessions() as session:
            return _members(session, _visible_org(session, caller, org))

    def set_member(self, caller: Caller, org: str, member: str, role: str) -> list[MemberView]:
        """Add a member (a user or service account) with ``role``, or change its role."""
        if role not in ROLES:
            raise BadRequest(f"a role is one of {', '.join(ROLES)}")
        with self._sessions() as session:
            target = _visible_org(session, caller, org)
            _check_manages_members(caller, target)  # before the name: members learn no names
            principal = _find(session, member)
            if principal.kind == "org":
                raise BadRequest("an organization cannot be a member of another")
            current = _membership(session, target, principal)
            _check_member_change(session, caller, target, current, role)
            if current is None:
                session.add(Membership(org_id=target.id, member_id=principal.id, role=role))
            else:
                current.role = role
            session.commit()
            out = _members(session, target)
        self._forget_roles()
        return out

    def invite(self, caller: Caller, org: str, member: str) -> None:
        """Make a user or service account a ``member`` (an existing member keeps its role)."""
        with self._sessions() as session:
            target = _managed_org(session, caller, org)
            invited = session.scalars(select(Principal).where(Principal.name == member)).first()
            if invited is None:
                raise NotFound(f"no user '{member}'")
            if invited.kind == "org":
                raise BadRequest("an organization cannot be a member of another")
            if _membership(session, target, invited) is None:
                session.add(Membership(org_id=target.id, member_id=invited.id, role="member"))
                session.commit()
        self._forget_roles()

    def remove_member(self, caller: Caller, org: str, member: str) -> None:
        with self._sessions() as session:
            target = _visible_org(session, caller, org)
            _check_manages_members(caller, target)  # before the name: members learn no names
            found = session.scalars(select(Principal).where(Principal.name == member)).first()
            current = _membership(session, target, found) if found is not None else None
            if current is None:
                raise NotFound(f"'{member}' is not a member of '{org}'")
            _check_member_change(session, caller, target, current, None)
            session.delete(current)
            session.commit()
        self._forget_roles()

    # grants -------------------------------------------------------------------------------
    def grants(self, caller: Caller, owner: str, name: str) -> list[GrantView]:
        """Who holds explicit rights on a model (for its managers)."""
        with self._sessions() as session:
            model = self._managed_model(session, caller, owner, name)
            return _grants(session, f"{owner}/{name}", model.id)

    def set_grant(
        self, caller: Caller, owner: str, name: str, principal: str, right: str
    ) -> list[GrantView]:
        """Give a principal ``call`` or ``manage`` rights on a model."""
        if right not in GRANT_RIGHTS:
            raise BadRequest(f"a right is one of {', '.join(GRANT_RIGHTS)}")
        with self._sessions() as session:
            model = self._managed_model(session, caller, owner, name)
            grantee = _find(session, principal)
            grant = _grant(session, model, grantee)
            if grant is None:
                session.add(Grant(model_id=model.id, grantee_id=grantee.id, right=right))
            else:
                grant.right = right
            session.commit()
            out = _grants(session, f"{owner}/{name}", model.id)
        self._forget_rights()
        return out

    def remove_grant(self, caller: Caller, owner: str, name: str, principal: str) -> None:
        with self._sessions() as session:
            model = self._managed_model(session, caller, owner, name)
            grantee = session.scalars(select(Principal).where(Principal.name == principal)).first()
            grant = _grant(session, model, grantee) if grantee is not None else None
            if grant is None:
                raise NotFound(f"'{principal}' holds no grant on '{owner}/{name}'")
            session.delete(grant)
            session.commit()
        self._forget_rights()

    # helpers ------------------------------------------------------------------------------
    def _managed_model(self, session: Session, caller: Caller, owner: str, name: str) -> Model:
        model = self._models.find_model(session, owner, name)
        require(caller, "manage", model)
        return model

    def _forget_roles(self) -> None:
        """A membership changed: cached callers carry roles, cached resolutions rights."""
        self._forget_callers()
        self._forget_rights()


def _find(session: Session, name: str) -> Principal:
    principal = session.scalars(select(Principal).where(Principal.name == name)).first()
    if principal is None:
        raise NotFound(f"no principal '{name}'")
    return principal


def _new_principal(
    session: Session, name: str, kind: str, owner_id: int | None = None
) -> Principal:
    if session.scalars(select(Principal).where(Principal.name == name)).first() is not None:
        raise Conflict(f"'{name}' already exists")
    principal = Principal(name=name, kind=kind, owner_id=owner_id)
    session.add(principal)
    session.flush()
    return principal


def _visible_org(session: Session, caller: Caller, name: str) -> Principal:
    """The organization, to its members and admins; not found to anyone else."""
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


def _view(session: Session, principal: Principal) -> PrincipalView:
    owner = session.get(Principal, principal.owner_id) if principal.owner_id else None
    return PrincipalView(
        id=principal.id,
        name=principal.name,
        kind=principal.kind,
        is_admin=principal.is_admin,
        created_at=principal.created_at,
        rate_per_second=principal.rate_per_second,
        burst=principal.burst,
        owner=owner.name if owner else None,
    )


def _membership(session: Session, org: Principal, member: Principal) -> Membership | None:
    return session.scalars(
        select(Membership).where(Membership.org_id == org.id, Membership.member_id == member.id)
    ).first()


def _members(session: Session, org: Principal) -> list[MemberView]:
    rows = session.execute(
        select(Membership, Principal)
        .join(Principal, Principal.id == Membership.member_id)
        .where(Membership.org_id == org.id)
        .order_by(Principal.name)
    ).all()
    return [MemberView(org=org.name, member=p.name, kind=p.kind, role=m.role) for m, p in rows]


def _owners(session: Session, org_id: int) -> int:
    statement = select(Membership).where(Membership.org_id == org_id, Membership.role == "owner")
    return len(session.scalars(statement).all())


def _sees(caller: Caller, principal: Principal) -> bool:
    """Whether the caller may see a principal: an admin all; else itself, its organizations
    and the service accounts it manages. Others answer as if they did not exist."""
    return (
        caller.is_admin
        or principal.id == caller.principal_id
        or caller.role_in(principal.id) is not None
        or (principal.kind == "service" and can_manage_principal(caller, principal))
    )


def _check_manages_members(caller: Caller, org: Principal) -> None:
    if not can_manage_org(caller, org.id):
        raise PermissionDenied(f"only owners and admins of '{org.name}' manage its members")


def _check_member_change(
    session: Session, caller: Caller, org: Principal, current: Membership | None, role: str | None
) -> None:
    """Owners and admins manage members; only owners touch owners; one owner always stays."""
    _check_manages_members(caller, org)
    touches_owner = role == "owner" or (current is not None and current.role == "owner")
    if touches_owner and not (caller.is_admin or caller.role_in(org.id) == "owner"):
        raise PermissionDenied(f"only owners of '{org.name}' add or change owners")
    demotes_owner = current is not None and current.role == "owner" and role != "owner"
    if demotes_owner and _owners(session, org.id) <= 1:
        raise Conflict(f"'{org.name}' must keep at least one owner")


def _grant(session: Session, model: Model, grantee: Principal) -> Grant | None:
    return session.scalars(
        select(Grant).where(Grant.model_id == model.id, Grant.grantee_id == grantee.id)
    ).first()


def _grants(session: Session, model_name: str, model_id: int) -> list[GrantView]:
    rows = session.execute(
        select(Grant, Principal)
        .join(Principal, Principal.id == Grant.grantee_id)
        .where(Grant.model_id == model_id)
        .order_by(Principal.name)
    ).all()
    return [
        GrantView(model=model_name, principal=p.name, kind=p.kind, right=g.right) for g, p in rows
    ]
