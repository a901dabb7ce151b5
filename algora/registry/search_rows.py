"""What the catalog's search reads of every model and version: plain rows, not ORM objects.

A catalog page looks at every model the caller may read. Building a thousand ``Model`` objects
(each with its owner and its grants) costs the ORM some 50 ms; reading the same columns takes a
few. :class:`ModelRow` holds what the policy decides rights from (it is a
:class:`~algora.auth.policy.Governed`) and what the page shows, so the search asks the policy
exactly as :meth:`Registry.list_models <algora.registry.service.Registry.list_models>` does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from algora.auth.policy import can
from algora.auth.principals import Caller
from algora.db.tables import Grant, Membership, Model, Principal, Version
from algora.registry.views import ModelView

__all__ = ["GrantRow", "MemberOf", "ModelRow", "OwnerRow", "VersionRow", "model_rows", "versions"]


@dataclass(frozen=True)
class GrantRow:
    grantee_id: int
    right: str


@dataclass(frozen=True)
class MemberOf:
    org_id: int


@dataclass(frozen=True)
class OwnerRow:
    id: int
    name: str
    memberships: tuple[MemberOf, ...]
    """The organizations the owner is a member of (what ``organization`` visibility reads)."""


@dataclass(frozen=True)
class ModelRow:
    """A model as the page shows it (``view``) and what its rights are decided from."""

    view: ModelView
    owner_id: int
    owner: OwnerRow
    grants: tuple[GrantRow, ...]

    @property
    def visibility(self) -> str:
        return self.view.visibility


@dataclass(frozen=True)
class VersionRow:
    """What the search reads of a version: no JSON, no logs, no locks."""

    id: int
    status: str
    semver: str
    created_at: datetime


_MODEL_COLUMNS = (
    Model.id, Model.owner_id, Principal.name, Model.name, Model.description, Model.visibility,
    Model.tags, Model.deprecated, Model.created_at,
)  # fmt: skip
_VERSION_COLUMNS = (
    Version.id, Version.model_id, Version.major, Version.minor, Version.patch, Version.status,
    Version.created_at,
)  # fmt: skip


def model_rows(session: Session, caller: Caller, ids: list[int] | None = None) -> list[ModelRow]:
    """The models (all, or those of ``ids``) the caller may read, in the order of their ids."""
    statement: Select[Any] = (
        select(*_MODEL_COLUMNS).join(Principal, Principal.id == Model.owner_id).order_by(Model.id)
    )
    grant_rows = select(Grant.model_id, Grant.grantee_id, Grant.right)
    if ids is not None:
        statement = statement.where(Model.id.in_(ids))
        grant_rows = grant_rows.where(Grant.model_id.in_(ids))
    rows = session.connection().execute(statement).all()
    grants: dict[int, list[GrantRow]] = defaultdict(list)
    for model_id, grantee_id, right in session.execute(grant_rows):
        grants[model_id].append(GrantRow(grantee_id, right))
    owners = _owners(session, {(row[1], row[2]) for row in rows})
    readable = []
    for id_, owner_id, owner, name, description, visibility, tags, deprecated, created_at in rows:
        view = ModelView(
            id=id_, owner=owner, name=name, description=description or "",
            visibility=visibility, tags=tuple(str(t) for t in tags or ()),
            deprecated=bool(deprecated), created_at=created_at,
        )  # fmt: skip
        model = ModelRow(view, owner_id, owners[owner_id], tuple(grants.get(id_, ())))
        if can(caller, "read", model):
            readable.append(model)
    return readable


def _owners(session: Session, owners: Iterable[tuple[int, str]]) -> dict[int, OwnerRow]:
    named = dict(owners)
    orgs: dict[int, list[MemberOf]] = defaultdict(list)
    if named:
        statement = select(Membership.member_id, Membership.org_id).where(
            Membership.member_id.in_(list(named))
        )
        for member_id, org_id in session.execute(statement):
            orgs[member_id].append(MemberOf(org_id))
    return {id_: OwnerRow(id_, name, tuple(orgs.get(id_, ()))) for id_, name in named.items()}


def versions(session: Session, model_ids: list[int]) -> Iterable[tuple[int, VersionRow]]:
    """(model id, version) of every version of these models, lowest version first."""
    statement = (
        select(*_VERSION_COLUMNS)
        .where(Version.model_id.in_(model_ids))
        .order_by(Version.major, Version.minor, Version.patch)
    )
    rows = session.connection().execute(statement)  # Core: no ORM work per row
    for id_, model_id, major, minor, patch, status, created_at in rows:
        yield model_id, VersionRow(id_, status, f"{major}.{minor}.{patch}", created_at)
