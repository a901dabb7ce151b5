"""Collections, ``data://owner/collection/path``: who may do what, and where the bytes live.

``.my`` names the caller. The root lists the caller's own name first (Algorithmia's
``client.username()`` reads it), then its organizations; an owner lists the collections the
caller may read; below a collection a folder is listed (paged with an opaque ``marker``) or a
file streamed. A collection's row in the registry holds its read ACL; its files live in a
:class:`~algora.store.collections.CollectionStore` (created on first write).

Who may do what: the owner, an admin and, for an organization's collections, its members read;
members, admins and owners of the organization write; its admins and owners change ACLs and
delete whole collections. A collection whose ACL is ``["user://*"]`` is readable by any
authenticated user; one whose ACL is ``["algo://.my/*"]`` by the owner's models too, whoever
called them. Collections the caller may not read look like missing ones (404). The key's
``data:read`` / ``data:write`` scopes narrow all this, patterned by ``owner/collection``. Model
code acts for its caller, narrowed by the model (``algora.auth.delegation``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.policy import require_scope
from algora.auth.principals import Caller
from algora.auth.scopes import has_scope
from algora.db.tables import DataCollection, Principal
from algora.errors import BadRequest, Conflict, NotFound, PermissionDenied
from algora.store.collections import CollectionStore, check_collection, check_segment
from algora.store.spaces import Acl, Folder, Opened, Page, Upload, WriteAction

__all__ = ["ACLS", "CollectionSpace", "CollectionTarget", "DataPath", "Rights", "owner_rights"]

PUBLIC_ACL = "user://*"
MY_MODELS_ACL = "algo://.my/*"
ACLS = (PUBLIC_ACL, MY_MODELS_ACL)
"""The read ACL entries Algorithmia knows; ``[]`` is private."""
DEFAULT_ACL = (MY_MODELS_ACL,)  # Algorithmia's default for a new collection
Need = Literal["read", "write", "manage"]
_NO_OWNER = {
    "put": "name a file inside a collection: data://owner/collection/file",
    "create": "create a collection under an owner: POST /v1/data/<owner>",
    "acl": "ACLs belong to collections: PATCH /v1/data/<owner>/<collection>",
    "delete": "delete a collection or something in one, not an owner",
}


@dataclass(frozen=True)
class DataPath:
    """A parsed ``owner/collection/parts...``; owner and collection are None above them."""

    owner: str | None
    collection: str | None
    parts: tuple[str, ...]

    @property
    def url(self) -> str:
        named = [s for s in (self.owner, self.collection) if s is not None]
        return "data://" + "/".join([*named, *self.parts])


@dataclass(frozen=True)
class Rights:
    read: bool
    write: bool
    manage: bool


def owner_rights(caller: Caller, owner: Principal) -> Rights:
    """What the caller may do with every collection of ``owner`` (ACLs may add reading).

    For a credential held by model code, what every principal that bounds it may do (the
    intersection; nothing while the model loads). See ``algora.auth.delegation``.
    """
    if caller.delegation is not None:
        each = [_principal_rights(c, owner) for c in caller.delegation.bounds]
        return Rights(
            bool(each) and all(r.read for r in each),
            bool(each) and all(r.write for r in each),
            bool(each) and all(r.manage for r in each),
        )
    return _principal_rights(caller, owner)


def _principal_rights(caller: Caller, owner: Principal) -> Rights:
    if caller.is_admin or owner.id == caller.principal_id:
        return Rights(True, True, True)
    role = caller.role_in(owner.id)
    return Rights(
        role is not None, role in ("member", "admin", "owner"), role in ("admin", "owner")
    )


def _readable(rights: Rights, row: DataCollection) -> bool:
    return rights.read or PUBLIC_ACL in (row.read_acl or [])


def _models_may_read(caller: Caller, row: DataCollection) -> bool:
    """Whether model code reads the collection in the model's own right, whoever called it:
    the collection's owner lets its models read it (``algo://.my/*``). No key scope narrows
    this; the owner granted it to the model, not to the caller."""
    delegation = caller.delegation
    return (
        delegation is not None
        and delegation.model_owner_id == row.owner_id
        and MY_MODELS_ACL in (row.read_acl or [])
    )


def _acl_in(body: Any) -> tuple[str, ...]:
    """The read list of an ``{"acl": {"read": [...]}}`` body, checked."""
    acl = body.get("acl") if isinstance(body, dict) else None
    read = acl.get("read") if isinstance(acl, dict) else None
    if not isinstance(read, list) or not all(isinstance(r, str) and r in ACLS for r in read):
        raise BadRequest('an ACL is {"read": [...]} with [], ["user://*"] or ["algo://.my/*"]')
    return tuple(dict.fromkeys(read))


@dataclass(frozen=True)
class _Resolved:
    owner: str
    owner_id: int
    rights: Rights
    read_acl: tuple[str, ...] | None
    """The collection's read ACL; None when the path names no collection."""


@dataclass(frozen=True)
class CollectionTarget:
    """Where a write goes, once authorized; ``body`` is a create request's (its ``acl``)."""

    path: DataPath
    owner_id: int
    body: dict[str, Any] | None = None

    @property
    def url(self) -> str:
        return self.path.url

    @property
    def audit_url(self) -> str:
        return self.path.url


@dataclass(frozen=True, eq=False)
class CollectionSpace:
    """Users' and organizations' collections; each method opens its own session."""

    sessions: sessionmaker[Session]
    root: Path
    max_file_bytes: int

    def _store(self) -> CollectionStore:
        return CollectionStore(self.root, self.max_file_bytes)

    def locate(self, caller: Caller, path: str) -> DataPath:
        """Check every segment before anything is looked up; ``.my`` becomes the caller."""
        text = path[:-1] if path.endswith("/") else path
        if not text:
            return DataPath(None, None, ())
        segments = [check_segment(s) for s in text.split("/")]
        owner = caller.name if segments[0] == ".my" else segments[0]
        collection = check_collection(segments[1]) if len(segments) > 1 else None
        return DataPath(owner, collection, tuple(segments[2:]))

    # reads ------------------------------------------------------------------------------------
    def get(
        self, caller: Caller, where: DataPath, *, acl: bool, marker: str | None, limit: int
    ) -> Page | Opened | Acl:
        if where.owner is None:
            return self._root_page(caller)
        with self.sessions() as session:
            found = self._resolve(session, caller, where, "read")
            if where.collection is None:
                return self._collections(session, caller, found, marker, limit)
        if acl:
            return Acl(found.read_acl)
        store = self._store()
        kind = store.kind(found.owner, where.collection, where.parts)
        if kind == "directory":
            return Page.of(store.list(found.owner, where.collection, where.parts, marker, limit))
        if kind is None and not where.parts:
            return Page()  # its folder is made on first write
        if kind is None:
            raise NotFound(f"no file or folder '{where.url}'")
        return store.open(found.owner, where.collection, where.parts)

    def kind(self, caller: Caller, where: DataPath) -> str:
        if where.owner is None:
            return "directory"
        with self.sessions() as session:
            self._resolve(session, caller, where, "read")
        if where.collection is None:
            return "directory"
        kind = self._store().kind(where.owner, where.collection, where.parts)
        if kind is None:
            raise NotFound(f"no file or folder '{where.url}'")
        return kind

    def _root_page(self, caller: Caller) -> Page:
        """The caller's own name first (``client.username()`` reads it), then its orgs."""
        names = [caller.name]
        org_ids = [org for org, _role in caller.memberships]
        if org_ids:
            with self.sessions() as session:
                names += session.scalars(
                    select(Principal.name).where(Principal.id.in_(org_ids)).order_by(Principal.name)
                ).all()
        return Page(folders=tuple(Folder(name) for name in names))

    def _collections(
        self, session: Session, caller: Caller, found: _Resolved, marker: str | None, limit: int
    ) -> Page:
        rows = session.scalars(
            select(DataCollection)
            .where(DataCollection.owner_id == found.owner_id)
            .order_by(DataCollection.name)
        ).all()
        visible = [
            r
            for r in rows
            if self._listable(caller, found, r) and (marker is None or r.name > marker)
        ]
        page = visible[:limit]
        folders = tuple(Folder(r.name, tuple(r.read_acl or [])) for r in page)
        return Page(folders=folders, marker=page[-1].name if len(visible) > limit else None)

    def _listable(self, caller: Caller, found: _Resolved, row: DataCollection) -> bool:
        if _models_may_read(caller, row):
            return True
        resource = f"{found.owner}/{row.name}"
        scoped = has_scope(caller.scopes, "data:read", resource, is_admin=caller.is_admin)
        return _readable(found.rights, row) and scoped

    # writes -----------------------------------------------------------------------------------
    def writable(self, caller: Caller, where: DataPath, action: WriteAction) -> CollectionTarget:
        if where.owner is None:
            raise BadRequest(_NO_OWNER[action])
        need: Need = "write"
        if action == "acl" or (action == "delete" and not where.parts):
            need = "manage"
        with self.sessions() as session:
            found = self._resolve(session, caller, where, need)
        shaped = {
            "put": where.collection is not None and bool(where.parts),
            "create": True,
            "acl": where.collection is not None and not where.parts,
            "delete": where.collection is not None,
        }[action]
        if not shaped:
            raise BadRequest(_NO_OWNER[action])
        return CollectionTarget(where, found.owner_id)

    def start_upload(self, target: CollectionTarget) -> Upload:
        owner, collection = self._named(target.path)
        store = self._store()
        store.ensure_collection(owner, collection)
        return store.start_upload(owner, collection, target.path.parts)

    def uploaded(self, target: CollectionTarget) -> None:
        return None

    def child(self, parent: CollectionTarget, name: str, body: dict[str, Any]) -> CollectionTarget:
        where = parent.path
        if where.collection is None:
            created = DataPath(where.owner, check_collection(name), ())
        else:
            created = DataPath(where.owner, where.collection, (*where.parts, check_segment(name)))
        return CollectionTarget(created, parent.owner_id, body)

    def create(self, caller: Caller, target: CollectionTarget) -> None:
        """A folder inside a collection, or a collection with the body's ACL (by default
        ``algo://.my/*``, as Algorithmia's)."""
        body = target.body or {}
        acl = _acl_in(body) if "acl" in body else DEFAULT_ACL
        owner, collection = self._named(target.path)
        store = self._store()
        if target.path.parts:
            store.ensure_collection(owner, collection)
            store.mkdir(owner, collection, target.path.parts)
            return
        require_scope(caller, "data:write", f"{owner}/{collection}")
        exists = Conflict(f"collection '{owner}/{collection}' already exists")
        with self.sessions() as session:
            if self._find_row(session, target.owner_id, collection) is not None:
                raise exists
            row = DataCollection(owner_id=target.owner_id, name=collection, read_acl=list(acl))
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                raise exists from None
        store.ensure_collection(owner, collection)

    def set_acl(self, caller: Caller, target: CollectionTarget, body: Any) -> tuple[str, ...]:
        acl = _acl_in(body)
        owner, collection = self._named(target.path)
        with self.sessions() as session:
            self._resolve(session, caller, target.path, "manage")
            row = self._find_row(session, target.owner_id, collection)
            if row is None:
                raise NotFound(f"no collection '{owner}/{collection}'")
            row.read_acl = list(acl)
            session.commit()
        return acl

    def delete(self, target: CollectionTarget, *, force: bool) -> int:
        owner, collection = self._named(target.path)
        store = self._store()
        if target.path.parts:
            return store.delete(owner, collection, target.path.parts, force=force)
        try:
            deleted = store.delete(owner, collection, (), force=force)
        except NotFound:
            deleted = 0  # the folder was never made: the row is all there is
        with self.sessions() as session:
            row = self._find_row(session, target.owner_id, collection)
            if row is not None:
                session.delete(row)
                session.commit()
        return deleted

    # rules ------------------------------------------------------------------------------------
    def _resolve(self, session: Session, caller: Caller, path: DataPath, need: Need) -> _Resolved:
        """The owner and collection of ``path``, once the caller may ``need`` them; a
        collection it may not read is reported missing."""
        if path.owner is None:
            raise BadRequest("name an owner: data://owner/...")
        owner = session.scalars(select(Principal).where(Principal.name == path.owner)).first()
        if owner is None:
            raise NotFound(f"no owner '{path.owner}'")
        rights = owner_rights(caller, owner)
        if path.collection is None:
            if need != "read" and not rights.write:
                raise PermissionDenied(
                    f"'{caller.name}' may not create collections of '{owner.name}'"
                )
            return _Resolved(owner.name, owner.id, rights, None)
        resource = f"{owner.name}/{path.collection}"
        row = self._find_row(session, owner.id, path.collection)
        models_read = need == "read" and row is not None and _models_may_read(caller, row)
        if not models_read:
            require_scope(caller, "data:write" if need != "read" else "data:read", resource)
        if row is None or not (models_read or _readable(rights, row)):
            raise NotFound(f"no collection '{resource}'")
        allowed = {"read": True, "write": rights.write, "manage": rights.manage}[need]
        if not allowed:
            raise PermissionDenied(f"'{caller.name}' may not {need} collection '{resource}'")
        return _Resolved(owner.name, owner.id, rights, tuple(row.read_acl or []))

    @staticmethod
    def _find_row(session: Session, owner_id: int, name: str) -> DataCollection | None:
        statement = select(DataCollection).where(
            DataCollection.owner_id == owner_id, DataCollection.name == name
        )
        return session.scalars(statement).first()

    @staticmethod
    def _named(path: DataPath) -> tuple[str, str]:
        if path.owner is None or path.collection is None:
            raise BadRequest("name a collection: data://owner/collection/...")
        return path.owner, path.collection
