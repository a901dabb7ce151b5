"""Hosted data under ``/v1/data``, Algorithmia-compatible (``data://owner/collection/path``).

``.my`` names the caller. ``GET /v1/data/`` lists the caller's own name first (Algorithmia's
``client.username()`` reads it), then its organizations; ``GET /v1/data/<owner>`` lists the
owner's collections the caller may read; below a collection, GET lists a folder (paged with an
opaque ``marker``) or streams a file, HEAD says whether a file or folder exists (``X-Data-Type``,
``X-Error-Message``), PUT writes a file (streamed, atomic, capped by ``max_data_file_bytes``),
POST creates a collection or folder, PATCH and ``GET ?acl=true`` set and read a collection's read
ACL, DELETE deletes (a non-empty folder only with ``force=true``).

Who may do what: the owner, an admin and, for an organization's collections, its members read;
members, admins and owners of the organization write; its admins and owners change ACLs and
delete whole collections. A collection whose ACL is ``["user://*"]`` is readable by any
authenticated user; one whose ACL is ``["algo://.my/*"]`` by the owner's models too, whoever
called them. Collections the caller may not read look like missing ones (404). The key's
``data:read`` / ``data:write`` scopes narrow all this, patterned by ``owner/collection``. Model
code acts for its caller, narrowed by the model (``algora.auth.delegation``); the model's own
collection and its call tree's scratch space are in ``model_data.py``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from algora.auth.policy import require_scope
from algora.auth.principals import Caller
from algora.auth.scopes import has_scope
from algora.db.tables import DataCollection, Principal
from algora.errors import BadRequest, Conflict, NotFound, PermissionDenied
from algora.gateway.auditing import trail_of
from algora.gateway.deps import platform_of
from algora.gateway.permissions import PermissionRoute
from algora.protocols.data import connectors
from algora.protocols.data.common import (
    Limit,
    Marker,
    Opened,
    ReadData,
    WriteData,
    head_response,
    json_body,
    listing_body,
    named_body,
    read_response,
    receive_upload,
    refuse_declared_oversize,
)
from algora.store.collections import PAGE_SIZE, CollectionStore, check_collection, check_segment

__all__ = ["ACLS", "router"]

router = APIRouter(prefix="/v1", route_class=PermissionRoute, tags=["data"])

PUBLIC_ACL = "user://*"
MY_MODELS_ACL = "algo://.my/*"
ACLS = (PUBLIC_ACL, MY_MODELS_ACL)
"""The read ACL entries Algorithmia knows; ``[]`` is private."""
DEFAULT_ACL = [MY_MODELS_ACL]  # Algorithmia's default for a new collection
_PATH = "/data/{path:path}"


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


def parse_path(raw: str, caller: Caller) -> DataPath:
    """Check every segment before anything is looked up; ``.my`` becomes the caller's name."""
    text = raw[:-1] if raw.endswith("/") else raw
    if not text:
        return DataPath(None, None, ())
    segments = [check_segment(s) for s in text.split("/")]
    owner = caller.name if segments[0] == ".my" else segments[0]
    collection = check_collection(segments[1]) if len(segments) > 1 else None
    return DataPath(owner, collection, tuple(segments[2:]))


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


def readable(rights: Rights, row: DataCollection) -> bool:
    return rights.read or PUBLIC_ACL in (row.read_acl or [])


def models_may_read(caller: Caller, row: DataCollection) -> bool:
    """Whether model code reads the collection in the model's own right, whoever called it:
    the collection's owner lets its models read it (``algo://.my/*``). No key scope narrows
    this; the owner granted it to the model, not to the caller."""
    delegation = caller.delegation
    return (
        delegation is not None
        and delegation.model_owner_id == row.owner_id
        and MY_MODELS_ACL in (row.read_acl or [])
    )


@dataclass(frozen=True)
class Target:
    path: DataPath
    owner: Principal
    rights: Rights
    row: DataCollection | None


def _store(request: Request) -> CollectionStore:
    settings = platform_of(request).settings
    return CollectionStore(settings.resolved_data_dir / "collections", settings.max_data_file_bytes)


def _find_owner(session: Session, name: str) -> Principal:
    owner = session.scalars(select(Principal).where(Principal.name == name)).first()
    if owner is None:
        raise NotFound(f"no owner '{name}'")
    return owner


def _find_row(session: Session, owner: Principal, name: str) -> DataCollection | None:
    statement = select(DataCollection).where(
        DataCollection.owner_id == owner.id, DataCollection.name == name
    )
    return session.scalars(statement).first()


def resolve(session: Session, caller: Caller, path: DataPath, need: str) -> Target:
    """The owner and collection of ``path``, once the caller may ``need`` (read, write or
    manage) them; a collection it may not read is reported missing."""
    assert path.owner is not None  # callers handle the root
    owner = _find_owner(session, path.owner)
    rights = owner_rights(caller, owner)
    if path.collection is None:
        if need != "read" and not rights.write:
            raise PermissionDenied(f"'{caller.name}' may not create collections of '{owner.name}'")
        return Target(path, owner, rights, None)
    resource = f"{owner.name}/{path.collection}"
    row = _find_row(session, owner, path.collection)
    models_read = need == "read" and row is not None and models_may_read(caller, row)
    if not models_read:
        require_scope(caller, "data:write" if need != "read" else "data:read", resource)
    if row is None or not (models_read or readable(rights, row)):
        raise NotFound(f"no collection '{resource}'")
    allowed = {"read": True, "write": rights.write, "manage": rights.manage}[need]
    if not allowed:
        raise PermissionDenied(f"'{caller.name}' may not {need} collection '{resource}'")
    return Target(path, owner, rights, row)


def _json(value: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(value, status_code=status)


def _acl_in(body: Any) -> list[str]:
    """The read list of an ``{"acl": {"read": [...]}}`` body, checked."""
    acl = body.get("acl") if isinstance(body, dict) else None
    read = acl.get("read") if isinstance(acl, dict) else None
    if not isinstance(read, list) or not all(isinstance(r, str) and r in ACLS for r in read):
        raise BadRequest('an ACL is {"read": [...]} with [], ["user://*"] or ["algo://.my/*"]')
    return list(dict.fromkeys(read))


# GET ----------------------------------------------------------------------------------------
@router.get(
    _PATH,
    summary="List the root, an owner's collections or a folder; read a file or an ACL",
    response_model=None,
)
async def get_data(
    request: Request,
    caller: ReadData,
    path: str,
    acl: bool = False,
    marker: Marker = None,
    limit: Limit = PAGE_SIZE,
) -> Response:
    if connectors.is_connector_path(path):  # s3://bucket/key
        return await connectors.get(request, caller, path, acl=acl, marker=marker, limit=limit)
    platform = platform_of(request)
    store = _store(request)
    where = parse_path(path, caller)

    def load() -> dict[str, Any] | Opened:
        if where.owner is None:
            return _root(platform.sessions, caller)
        with platform.sessions() as session:
            target = resolve(session, caller, where, "read")
            row = target.row
            if row is None:
                return _collections(session, caller, target, marker, limit)
        if acl:
            return {"acl": {"read": list(row.read_acl or [])}}
        assert where.collection is not None
        kind = store.kind(target.owner.name, where.collection, where.parts)
        if kind == "directory":
            listed = store.list(target.owner.name, where.collection, where.parts, marker, limit)
            return listing_body(listed)
        if kind is None and not where.parts:
            return {"folders": [], "files": []}  # its folder is made on first write
        if kind is None:
            raise NotFound(f"no file or folder '{where.url}'")
        return store.open(target.owner.name, where.collection, where.parts)

    return await read_response(load)


def _root(sessions: Any, caller: Caller) -> dict[str, Any]:
    """The caller's own name first (``client.username()`` reads it), then its organizations."""
    folders = [{"name": caller.name}]
    org_ids = [org for org, _role in caller.memberships]
    if org_ids:
        with sessions() as session:
            orgs = session.scalars(
                select(Principal.name).where(Principal.id.in_(org_ids)).order_by(Principal.name)
            ).all()
        folders += [{"name": name} for name in orgs]
    return {"folders": folders, "files": []}


def _listable(caller: Caller, target: Target, row: DataCollection) -> bool:
    if models_may_read(caller, row):
        return True
    resource = f"{target.owner.name}/{row.name}"
    scoped = has_scope(caller.scopes, "data:read", resource, is_admin=caller.is_admin)
    return readable(target.rights, row) and scoped


def _collections(
    session: Session, caller: Caller, target: Target, marker: str | None, limit: int
) -> dict[str, Any]:
    rows = session.scalars(
        select(DataCollection)
        .where(DataCollection.owner_id == target.owner.id)
        .order_by(DataCollection.name)
    ).all()
    visible = [
        r for r in rows if _listable(caller, target, r) and (marker is None or r.name > marker)
    ]
    page = visible[:limit]
    out: dict[str, Any] = {
        "folders": [{"name": r.name, "acl": {"read": list(r.read_acl or [])}} for r in page],
        "files": [],
    }
    if len(visible) > limit:
        out["marker"] = page[-1].name
    return out


# HEAD ---------------------------------------------------------------------------------------
@router.head(_PATH, summary="Whether a file or folder exists (X-Data-Type, X-Error-Message)")
async def head_data(request: Request, caller: ReadData, path: str) -> Response:
    if connectors.is_connector_path(path):
        return await connectors.head(request, caller, path)
    platform = platform_of(request)
    store = _store(request)

    def probe() -> str:
        where = parse_path(path, caller)
        if where.owner is None:
            return "directory"
        with platform.sessions() as session:
            resolve(session, caller, where, "read")
        if where.collection is None:
            return "directory"
        kind = store.kind(where.owner, where.collection, where.parts)
        if kind is None:
            raise NotFound(f"no file or folder '{where.url}'")
        return kind

    return await head_response(request, probe)


# PUT ----------------------------------------------------------------------------------------
@router.put(_PATH, summary="Write a file (streamed, atomic, at most max_data_file_bytes)")
async def put_data(request: Request, caller: WriteData, path: str) -> JSONResponse:
    if connectors.is_connector_path(path):
        return await connectors.put(request, caller, path)
    platform = platform_of(request)
    store = _store(request)
    where = parse_path(path, caller)
    trail_of(request).resource = where.url
    if where.owner is None:
        raise BadRequest("name a file inside a collection: data://owner/collection/file")

    def authorize() -> None:
        with platform.sessions() as session:
            resolve(session, caller, where, "write")

    await asyncio.to_thread(authorize)  # before the shape, so that strangers learn nothing
    if where.collection is None or not where.parts:
        raise BadRequest("name a file inside a collection: data://owner/collection/file")
    refuse_declared_oversize(request, store.max_file_bytes)
    assert where.owner is not None
    owner, collection = where.owner, where.collection
    await asyncio.to_thread(store.ensure_collection, owner, collection)
    upload = await asyncio.to_thread(store.start_upload, owner, collection, where.parts)
    await receive_upload(request, upload)
    return _json({"result": where.url})


# POST ---------------------------------------------------------------------------------------
@router.post(_PATH, summary="Create a collection (under an owner) or a folder (in a collection)")
async def create_data(request: Request, caller: WriteData, path: str) -> JSONResponse:
    if connectors.is_connector_path(path):
        return await connectors.create(request, caller, path)
    platform = platform_of(request)
    store = _store(request)
    where = parse_path(path, caller)
    if where.owner is None:
        raise BadRequest("create a collection under an owner: POST /v1/data/<owner>")

    def authorize() -> Target:
        with platform.sessions() as session:
            return resolve(session, caller, where, "write")

    target = await asyncio.to_thread(authorize)
    body, name = await named_body(request, '{"name": ..., "acl": {"read": [...]}}')
    if where.collection is None:
        created = DataPath(where.owner, check_collection(name), ())
    else:
        created = DataPath(where.owner, where.collection, (*where.parts, check_segment(name)))
    trail_of(request).resource = created.url
    acl = _acl_in(body) if "acl" in body else list(DEFAULT_ACL)

    def create() -> None:
        if where.collection is not None:
            store.ensure_collection(target.owner.name, where.collection)
            store.mkdir(target.owner.name, where.collection, created.parts)
            return
        require_scope(caller, "data:write", f"{target.owner.name}/{name}")
        with platform.sessions() as session:
            if _find_row(session, target.owner, name) is not None:
                raise Conflict(f"collection '{target.owner.name}/{name}' already exists")
            session.add(DataCollection(owner_id=target.owner.id, name=name, read_acl=acl))
            try:
                session.commit()
            except IntegrityError:
                raise Conflict(f"collection '{target.owner.name}/{name}' already exists") from None
        store.ensure_collection(target.owner.name, name)

    await asyncio.to_thread(create)
    return _json({"result": created.url})


# PATCH --------------------------------------------------------------------------------------
@router.patch(_PATH, summary="Set a collection's read ACL")
async def update_data(request: Request, caller: WriteData, path: str) -> JSONResponse:
    if connectors.is_connector_path(path):
        raise connectors.no_acls()
    platform = platform_of(request)
    where = parse_path(path, caller)
    trail_of(request).resource = where.url
    if where.owner is None:
        raise BadRequest("ACLs belong to collections: PATCH /v1/data/<owner>/<collection>")

    def authorize() -> None:
        with platform.sessions() as session:
            resolve(session, caller, where, "manage")

    await asyncio.to_thread(authorize)
    if where.collection is None or where.parts:
        raise BadRequest("ACLs belong to collections: PATCH /v1/data/<owner>/<collection>")
    acl = _acl_in(await json_body(request))

    def change() -> None:
        with platform.sessions() as session:
            target = resolve(session, caller, where, "manage")
            assert target.row is not None
            target.row.read_acl = acl
            session.commit()

    await asyncio.to_thread(change)
    return _json({"acl": {"read": acl}})


# DELETE -------------------------------------------------------------------------------------
@router.delete(_PATH, summary="Delete a file, a folder or a collection (non-empty: force=true)")
async def delete_data(
    request: Request, caller: WriteData, path: str, force: bool = False
) -> JSONResponse:
    if connectors.is_connector_path(path):
        return await connectors.delete(request, caller, path, force=force)
    platform = platform_of(request)
    store = _store(request)
    where = parse_path(path, caller)
    trail_of(request).resource = where.url
    if where.owner is None:
        raise BadRequest("delete a collection or something in one, not an owner")

    def delete() -> int:
        need = "write" if where.parts else "manage"
        with platform.sessions() as session:
            target = resolve(session, caller, where, need)
            if where.collection is None:
                raise BadRequest("delete a collection or something in one, not an owner")
            owner = target.owner.name
            if where.parts:
                return store.delete(owner, where.collection, where.parts, force=force)
            try:
                deleted = store.delete(owner, where.collection, (), force=force)
            except NotFound:
                deleted = 0  # the folder was never made: the row is all there is
            session.delete(target.row)
            session.commit()
            return deleted

    deleted = await asyncio.to_thread(delete)
    return _json({"result": {"deleted": deleted}})
