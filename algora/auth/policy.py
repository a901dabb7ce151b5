"""Authorization decisions: who may do what to a model, an organization or a key.

Pure functions of a :class:`Caller` (who, its roles in organizations, its key's scopes) and the
rows concerned; callers only ask ``require``/``require_scope`` and act on the answer.

A model's rights, each including the ones before it: ``read`` < ``call`` < ``publish`` <
``manage``. Who holds them:

- an admin, and the model's owner: all;
- members of the owning organization: viewer ``call``, member ``publish``, admin and owner
  ``manage``;
- a grant to the caller, or to an organization the caller is a member of (any role): ``call``
  or ``manage``;
- visibility ``public``: everyone ``call``; ``organization``: members of any organization that
  the owner (a user) belongs to, or of the owning organization, ``call``; ``private``: nobody
  else.

The key's scopes narrow all of this (see ``algora.auth.scopes``). A credential held by model
code has the intersection of the rights of the principals it names (``algora.auth.delegation``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from algora.auth.principals import Caller
from algora.auth.scopes import has_scope
from algora.db.tables import Model, Principal
from algora.errors import ModelNotFound, PermissionDenied

__all__ = [
    "ROLES",
    "Action",
    "Governed",
    "Role",
    "can",
    "can_manage_org",
    "can_manage_principal",
    "model_right",
    "require",
    "require_scope",
]

Action = Literal["read", "call", "publish", "manage"]
Role = Literal["viewer", "member", "admin", "owner"]
ROLES: tuple[Role, ...] = ("viewer", "member", "admin", "owner")
_ACTIONS: tuple[Action, ...] = ("read", "call", "publish", "manage")
_ROLE_RIGHT: dict[str, Action] = {
    "viewer": "call",
    "member": "publish",
    "admin": "manage",
    "owner": "manage",
}
_GRANT_RIGHT: dict[str, Action] = {"call": "call", "manage": "manage"}


class _GrantRow(Protocol):
    @property
    def grantee_id(self) -> int: ...
    @property
    def right(self) -> str: ...


class _MembershipRow(Protocol):
    @property
    def org_id(self) -> int: ...


class _OwnerRow(Protocol):
    @property
    def memberships(self) -> Sequence[_MembershipRow]: ...


class Governed(Protocol):
    """What a model's rights are decided from: a :class:`Model` row, or the same values read
    without the ORM (the catalog's search reads a thousand models at once that way)."""

    @property
    def owner_id(self) -> int: ...
    @property
    def visibility(self) -> str: ...
    @property
    def grants(self) -> Sequence[_GrantRow]: ...
    @property
    def owner(self) -> _OwnerRow: ...


def _rank(action: Action | None) -> int:
    return -1 if action is None else _ACTIONS.index(action)


def model_right(caller: Caller, model: Governed) -> Action | None:
    """The highest right the caller's principal holds on the model (None: none at all).

    For a credential held by model code, the lowest right among the principals that bound it
    (the intersection; none at all while the model loads).
    """
    if caller.delegation is not None:
        rights = [_principal_right(c, model) for c in caller.delegation.bounds]
        return min(rights, key=_rank) if rights else None
    return _principal_right(caller, model)


def _principal_right(caller: Caller, model: Governed) -> Action | None:
    if caller.is_admin or model.owner_id == caller.principal_id:
        return "manage"
    best: Action | None = None

    def consider(right: Action | None) -> None:
        nonlocal best
        if _rank(right) > _rank(best):
            best = right

    role = caller.role_in(model.owner_id)
    if role is not None:
        consider(_ROLE_RIGHT.get(role))
    for grant in model.grants:
        if grant.grantee_id == caller.principal_id or caller.role_in(grant.grantee_id):
            consider(_GRANT_RIGHT.get(grant.right))
    if model.visibility == "public":
        consider("call")
    elif model.visibility == "organization":
        owner_orgs = {m.org_id for m in model.owner.memberships}
        if role is not None or any(caller.role_in(org) for org in owner_orgs):
            consider("call")
    return best


def can(caller: Caller, action: Action, model: Governed) -> bool:
    """Whether the caller's principal may ``action`` the model (scopes are checked apart)."""
    return _rank(model_right(caller, model)) >= _rank(action)


def require(caller: Caller, action: Action, model: Model) -> None:
    """Raise unless the caller may act on the model; hide private models from strangers."""
    if can(caller, action, model):
        return
    if not can(caller, "read", model):
        raise ModelNotFound(f"model '{model.owner.name}/{model.name}' does not exist")
    raise PermissionDenied(f"'{caller.name}' may not {action} '{model.owner.name}/{model.name}'")


def require_scope(caller: Caller, scope: str, resource: str | None = None) -> None:
    """Raise PermissionDenied unless the caller's key holds ``scope`` (for ``resource``)."""
    if has_scope(caller.scopes, scope, resource, is_admin=caller.is_admin):
        return
    target = f" for '{resource}'" if resource else ""
    raise PermissionDenied(f"key '{caller.key_id}' lacks the '{scope}' scope{target}")


def can_manage_org(caller: Caller, org_id: int) -> bool:
    """Admins, and the organization's owners and admins."""
    return caller.is_admin or caller.role_in(org_id) in ("admin", "owner")


def can_manage_principal(caller: Caller, principal: Principal) -> bool:
    """Whether the caller manages the principal's keys: its own; an admin any; a service
    account's, its owner and its owning organization's admins and owners."""
    if caller.is_admin or principal.id == caller.principal_id:
        return True
    if principal.kind != "service" or principal.owner_id is None:
        return False
    return principal.owner_id == caller.principal_id or can_manage_org(caller, principal.owner_id)
