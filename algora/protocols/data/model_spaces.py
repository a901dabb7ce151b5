"""Algorithmia's special collections under ``/v1/data``: a model's own, and a call tree's.

- ``data://.algo/<owner>/<model>/temp/...`` and ``.../perm/...``: the model's own collection.
  From inside the model, ``data://.algo/temp/...`` and ``data://.algo/perm/...`` name it
  without the model's name. The model's code reads and writes it whoever called it (see
  ``algora.auth.delegation``); from outside, those who may manage the model do, with a key that
  holds ``data:read`` / ``data:write``. Files in ``temp`` are removed about a day after they
  were written.
- ``data://.session/...``: scratch space shared by the models of one call tree (the original
  call and every call made from inside it), removed when the original call ends. Only model
  code serving a call of the tree reaches it; from outside it does not exist.

Neither has an ACL: ``GET ?acl=true`` answers ``{}`` (Algorithmia's client then reports none)
and ``PATCH`` is refused. Files are written atomically as in every collection; the folders on
the way to a file are created as needed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select

from algora.auth.delegation import algo_resource, session_resource
from algora.auth.policy import can, require_scope
from algora.auth.principals import Caller
from algora.db.tables import Model, Principal
from algora.errors import BadRequest, NotFound, PermissionDenied
from algora.gateway.auditing import trail_of
from algora.gateway.deps import platform_of
from algora.gateway.permissions import PermissionRoute
from algora.protocols.data.common import (
    Limit,
    Marker,
    Opened,
    ReadData,
    WriteData,
    head_response,
    listing_body,
    named_body,
    read_response,
    receive_upload,
    refuse_declared_oversize,
)
from algora.store.collections import (
    PAGE_SIZE,
    CollectionStore,
    Upload,
    check_collection,
    check_segment,
)
from algora.store.model_data import (
    ALGO_FOLDERS,
    SESSION_COLLECTION,
    algo_store,
    session_store,
    sweep_temp,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1", route_class=PermissionRoute, tags=["data"])
Kind = Literal["algo", "session"]


@dataclass(frozen=True)
class Place:
    """Where a special path lies: a folder or file of a :class:`CollectionStore`."""

    kind: Kind
    store: CollectionStore
    owner: str
    collection: str
    parts: tuple[str, ...]
    url: str

    @property
    def is_root(self) -> bool:
        """The collection itself (and, for a model's, its ``temp`` and ``perm`` folders)."""
        if self.kind == "algo":
            return not self.parts or (len(self.parts) == 1 and self.parts[0] in ALGO_FOLDERS)
        return not self.parts

    def child(self, name: str) -> Place:
        return _place(self.kind, self.store, self.owner, self.collection,
                      (*self.parts, check_segment(name)))  # fmt: skip


def _place(
    kind: Kind, store: CollectionStore, owner: str, collection: str, parts: tuple[str, ...]
) -> Place:
    root = f"data://.algo/{owner}/{collection}" if kind == "algo" else "data://.session"
    return Place(kind, store, owner, collection, parts, "/".join([root, *parts]))


def _segments(kind: Kind, rest: str) -> list[str]:
    """The checked segments after ``.algo`` or ``.session``."""
    if rest and not rest.startswith("/"):
        raise NotFound(f"no such collection: name data://.{kind}/...")
    text = rest[1:]
    if text.endswith("/"):
        text = text[:-1]
    return [check_segment(s) for s in text.split("/")] if text else []


def _model_row(request: Request, owner: str, name: str) -> Model | None:
    with platform_of(request).sessions() as session:
        statement = (
            select(Model)
            .join(Principal, Model.owner_id == Principal.id)
            .where(Principal.name == owner, Model.name == name)
        )
        row = session.scalars(statement).first()
        if row is not None:
            _ = row.grants, row.owner.memberships  # loaded while the session is open
        return row


def locate(request: Request, caller: Caller, kind: Kind, rest: str, need: str) -> Place:
    """The place a path names, once the caller may ``need`` (``read`` or ``write``) it.

    Blocking (it may read the registry): call it in a thread.
    """
    segments = _segments(kind, rest)
    settings = platform_of(request).settings
    data_dir, cap = settings.resolved_data_dir, settings.max_data_file_bytes
    delegation = caller.delegation
    scope = "data:write" if need == "write" else "data:read"
    if kind == "session":
        if delegation is None or delegation.session is None:
            raise PermissionDenied(
                "data://.session is the scratch space of one call tree: only model code "
                "serving a call can use it"
            )
        require_scope(caller, scope, session_resource(delegation.session))
        store = session_store(data_dir, cap)
        return _place(kind, store, delegation.session, SESSION_COLLECTION, tuple(segments))
    if segments and segments[0] in ALGO_FOLDERS:
        if delegation is None:
            raise BadRequest(
                "data://.algo/temp/... and data://.algo/perm/... name the calling model's own "
                "collection, so only model code may use them; from outside, name the model: "
                "data://.algo/<owner>/<model>/temp/..."
            )
        owner, name = delegation.model.split("/")
        parts = tuple(segments)
    elif len(segments) >= 2:
        owner, name = segments[0], check_collection(segments[1])
        parts = tuple(segments[2:])
    else:
        raise BadRequest("name a model's collection: data://.algo/<owner>/<model>/temp/...")
    model = f"{owner}/{name}"
    if parts and parts[0] not in ALGO_FOLDERS:
        raise NotFound(f"a model's collection holds only temp/ and perm/: see data://.algo/{model}")
    require_scope(caller, scope, algo_resource(model))
    if delegation is None or delegation.model != model:
        row = _model_row(request, owner, name)
        if row is None or not can(caller, "manage", row):
            raise NotFound(f"no collection 'data://.algo/{model}'")
    return _place(kind, algo_store(data_dir, cap), owner, name, parts)


def _writable(place: Place, what: str) -> None:
    """Refuse a write to the collection itself (or to a model's collection outside its
    ``temp`` and ``perm`` folders)."""
    inside = len(place.parts) >= (2 if place.kind == "algo" else 1)
    if not inside:
        where = "temp/ or perm/ of data://.algo/..." if place.kind == "algo" else "data://.session"
        raise BadRequest(f"{what} a file or folder inside {where}")


def _kind_of(place: Place) -> str | None:
    if place.is_root:
        if place.kind == "algo":
            for folder in ALGO_FOLDERS:  # "guaranteed to exist for every algorithm"
                place.store.ensure_folder(place.owner, place.collection, (folder,))
        else:
            place.store.ensure_collection(place.owner, place.collection)
    return place.store.kind(place.owner, place.collection, place.parts)


async def _locate(request: Request, caller: Caller, kind: Kind, rest: str, need: str) -> Place:
    return await asyncio.to_thread(locate, request, caller, kind, rest, need)


async def _get(
    request: Request,
    caller: Caller,
    kind: Kind,
    rest: str,
    acl: bool,
    marker: str | None,
    limit: int,
) -> Response:
    place = await _locate(request, caller, kind, rest, "read")
    if acl:
        return JSONResponse({})  # no ACL: Algorithmia's client reports None

    def load() -> dict[str, Any] | Opened:
        found = _kind_of(place)
        if found == "directory":
            listed = place.store.list(place.owner, place.collection, place.parts, marker, limit)
            return listing_body(listed)
        if found is None:
            raise NotFound(f"no file or folder '{place.url}'")
        return place.store.open(place.owner, place.collection, place.parts)

    return await read_response(load)


async def _head(request: Request, caller: Caller, kind: Kind, rest: str) -> Response:
    def probe() -> str:
        place = locate(request, caller, kind, rest, "read")
        found = _kind_of(place)
        if found is None:
            raise NotFound(f"no file or folder '{place.url}'")
        return found

    return await head_response(request, probe)


async def _put(request: Request, caller: Caller, kind: Kind, rest: str) -> JSONResponse:
    place = await _locate(request, caller, kind, rest, "write")
    trail_of(request).resource = place.url
    _writable(place, "write")
    store = place.store
    refuse_declared_oversize(request, store.max_file_bytes)

    def start() -> Upload:
        store.ensure_folder(place.owner, place.collection, place.parts[:-1])
        return store.start_upload(place.owner, place.collection, place.parts)

    await receive_upload(request, await asyncio.to_thread(start))
    if place.kind == "algo" and place.parts[0] == ALGO_FOLDERS[0]:
        await asyncio.to_thread(sweep_temp, store)
    return JSONResponse({"result": place.url})


async def _post(request: Request, caller: Caller, kind: Kind, rest: str) -> JSONResponse:
    parent = await _locate(request, caller, kind, rest, "write")
    _body, name = await named_body(request, '{"name": ...}')
    place = parent.child(name)
    trail_of(request).resource = place.url
    if place.kind == "algo" and place.parts[0] not in ALGO_FOLDERS:
        raise BadRequest("a model's collection holds only temp/ and perm/")

    def create() -> None:
        store = place.store
        store.ensure_folder(place.owner, place.collection, place.parts[:-1])
        if place.is_root:
            store.ensure_folder(place.owner, place.collection, place.parts)
        else:
            store.mkdir(place.owner, place.collection, place.parts)

    await asyncio.to_thread(create)
    return JSONResponse({"result": place.url})


async def _patch(request: Request, caller: Caller, kind: Kind, rest: str) -> JSONResponse:
    place = await _locate(request, caller, kind, rest, "write")
    trail_of(request).resource = place.url
    raise BadRequest(f"data://.{kind} has no ACL: only its own rules decide who reads it")


async def _delete(
    request: Request, caller: Caller, kind: Kind, rest: str, force: bool
) -> JSONResponse:
    place = await _locate(request, caller, kind, rest, "write")
    trail_of(request).resource = place.url
    _writable(place, "delete")
    deleted = await asyncio.to_thread(
        place.store.delete, place.owner, place.collection, place.parts, force=force
    )
    return JSONResponse({"result": {"deleted": deleted}})


def _routes(kind: Kind) -> None:
    """The six data routes for one special collection (``.algo`` or ``.session``)."""
    path = f"/data/.{kind}{{rest:path}}"
    label = "a model's own collection" if kind == "algo" else "a call tree's scratch space"

    @router.get(path, summary=f"List or read {label}", response_model=None)
    async def get_special(
        request: Request,
        caller: ReadData,
        rest: str,
        acl: bool = False,
        marker: Marker = None,
        limit: Limit = PAGE_SIZE,
    ) -> Response:
        return await _get(request, caller, kind, rest, acl, marker, limit)

    @router.head(path, summary=f"Whether a file or folder of {label} exists")
    async def head_special(request: Request, caller: ReadData, rest: str) -> Response:
        return await _head(request, caller, kind, rest)

    @router.put(path, summary=f"Write a file in {label}")
    async def put_special(request: Request, caller: WriteData, rest: str) -> JSONResponse:
        return await _put(request, caller, kind, rest)

    @router.post(path, summary=f"Create a folder in {label}")
    async def create_special(request: Request, caller: WriteData, rest: str) -> JSONResponse:
        return await _post(request, caller, kind, rest)

    @router.patch(path, summary=f"Refused: {label} has no ACL")
    async def update_special(request: Request, caller: WriteData, rest: str) -> JSONResponse:
        return await _patch(request, caller, kind, rest)

    @router.delete(path, summary=f"Delete a file or folder of {label}")
    async def delete_special(
        request: Request, caller: WriteData, rest: str, force: bool = False
    ) -> JSONResponse:
        return await _delete(request, caller, kind, rest, force)


_routes("algo")
_routes("session")
