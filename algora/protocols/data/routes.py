"""The hosted-data routes, Algorithmia-compatible: one set over every data space.

- ``/v1/data/.algo...`` and ``/v1/data/.session...``: a model's own collection and a call tree's
  scratch space (matched before ``/v1/data/{path}``, which would take them for owners);
- ``/v1/data/{path}``: collections (``data://owner/collection/...``), and connectors when the
  path names one (``s3://bucket/key``, as Algorithmia's client sends it);
- ``/v1/connector/{connector}/{path}``: the same connectors, as Algorithmia's REST API names them.

GET lists a folder (paged with an opaque ``marker``), streams a file or (``acl=true``) reads an
ACL; HEAD says whether a file or folder exists (``X-Data-Type``, ``X-Error-Message``); PUT
writes a file (streamed, atomic, capped by ``max_data_file_bytes``); POST creates a collection
or folder (``{"name": ...}``); PATCH sets a collection's read ACL; DELETE deletes (a non-empty
folder only with ``force=true``). Each route parses the path, picks the space
(:mod:`algora.store.spaces`), which owns every rule, calls it in a thread and renders its answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from algora.auth.principals import Caller
from algora.errors import BadRequest
from algora.gateway.auditing import trail_of
from algora.gateway.deps import platform_of
from algora.gateway.permissions import PermissionRoute, audited
from algora.protocols.data.common import (
    Limit,
    Marker,
    ReadData,
    WriteData,
    head_response,
    json_body,
    named_body,
    receive_upload,
    refuse_declared_oversize,
    render,
)
from algora.store.collections import PAGE_SIZE
from algora.store.connector_space import NO_ACLS, is_connector_path
from algora.store.spaces import DataSpace, WriteAction

__all__ = ["router"]

router = APIRouter(prefix="/v1", route_class=PermissionRoute, tags=["data"])

Space = DataSpace[Any, Any]
_NAMED = '{"name": ...}'
"""The body that creates a folder, named in the error when it is not that."""
_NAMED_WITH_ACL = '{"name": ..., "acl": {"read": [...]}}'


# The operations, the same for every space ---------------------------------------------------
def _audit(request: Request, resource: str) -> None:
    trail_of(request).resource = resource


async def _writable(
    request: Request, space: Space, caller: Caller, path: str, action: WriteAction
) -> Any:
    """The target of a write, audited as what the caller named, then as what it reached."""
    where = space.locate(caller, path)
    _audit(request, where.url)
    target = await asyncio.to_thread(space.writable, caller, where, action)
    _audit(request, target.audit_url)
    return target


async def _get(
    space: Space, caller: Caller, path: str, acl: bool, marker: str | None, limit: int
) -> Response:
    where = space.locate(caller, path)
    loaded = await asyncio.to_thread(space.get, caller, where, acl=acl, marker=marker, limit=limit)
    return render(loaded)


async def _head(request: Request, space: Space, caller: Caller, path: str) -> Response:
    def probe() -> str:
        return space.kind(caller, space.locate(caller, path))

    return await head_response(request, probe)


async def _put(request: Request, space: Space, caller: Caller, path: str) -> JSONResponse:
    target = await _writable(request, space, caller, path, "put")
    refuse_declared_oversize(request, space.max_file_bytes)
    upload = await asyncio.to_thread(space.start_upload, target)
    await receive_upload(request, upload)  # a cancelled request leaves nothing behind
    await asyncio.to_thread(space.uploaded, target)
    return JSONResponse({"result": target.url})


async def _post(
    request: Request, space: Space, caller: Caller, path: str, shape: str
) -> JSONResponse:
    parent = await _writable(request, space, caller, path, "create")
    body, name = await named_body(request, shape)
    target = space.child(parent, name, body)
    _audit(request, target.audit_url)
    await asyncio.to_thread(space.create, caller, target)
    return JSONResponse({"result": target.url})


async def _patch(request: Request, space: Space, caller: Caller, path: str) -> JSONResponse:
    target = await _writable(request, space, caller, path, "acl")
    body = await json_body(request)
    acl = await asyncio.to_thread(space.set_acl, caller, target, body)
    return JSONResponse({"acl": {"read": list(acl)}})


async def _delete(
    request: Request, space: Space, caller: Caller, path: str, force: bool
) -> JSONResponse:
    target = await _writable(request, space, caller, path, "delete")
    deleted = await asyncio.to_thread(space.delete, target, force=force)
    return JSONResponse({"result": {"deleted": deleted}})


# The routes of one family of paths -------------------------------------------------------------
@dataclass(frozen=True)
class _Target:
    """What a data route's path names: the space, the path inside it, the body that creates a
    folder there, and whether it is a connector's (no ACLs, whatever the path)."""

    space: Space
    path: str
    shape: str = _NAMED
    connector: bool = False


def _family(
    family: str, path: str, target: Callable[..., _Target], summaries: Mapping[str, str]
) -> None:
    """The routes of one family of paths: a route for each verb ``summaries`` names
    (``get_data``, ``head_data`` ...), over the ``target`` dependency, whose parameters are
    the path's."""
    located = Depends(target)

    async def get(
        request: Request,
        caller: ReadData,
        where: _Target = located,
        acl: bool = False,
        marker: Marker = None,
        limit: Limit = PAGE_SIZE,
    ) -> Response:
        return await _get(where.space, caller, where.path, acl, marker, limit)

    async def head(request: Request, caller: ReadData, where: _Target = located) -> Response:
        return await _head(request, where.space, caller, where.path)

    async def put(request: Request, caller: WriteData, where: _Target = located) -> JSONResponse:
        return await _put(request, where.space, caller, where.path)

    async def create(request: Request, caller: WriteData, where: _Target = located) -> JSONResponse:
        return await _post(request, where.space, caller, where.path, where.shape)

    async def update(request: Request, caller: WriteData, where: _Target = located) -> JSONResponse:
        if where.connector:
            raise BadRequest(NO_ACLS)
        return await _patch(request, where.space, caller, where.path)

    async def delete(
        request: Request, caller: WriteData, where: _Target = located, force: bool = False
    ) -> JSONResponse:
        return await _delete(request, where.space, caller, where.path, force)

    verbs: dict[str, tuple[str, str, Callable[..., Any]]] = {
        "get": ("GET", "data.read", get),
        "head": ("HEAD", "data.read", head),
        "put": ("PUT", "data.put", put),
        "create": ("POST", "data.create", create),
        "update": ("PATCH", "data.acl", update),
        "delete": ("DELETE", "data.delete", delete),
    }
    for verb, (method, action, endpoint) in verbs.items():
        if verb in summaries:
            router.add_api_route(
                path,
                endpoint,
                methods=[method],
                name=f"{verb}_{family}",
                summary=summaries[verb],
                response_model=None,
                openapi_extra=audited(action),
            )


# /v1/data/.algo... and /v1/data/.session... ----------------------------------------------------
def _algo(request: Request, rest: str) -> _Target:
    return _Target(platform_of(request).data_spaces.algo, rest)


def _session(request: Request, rest: str) -> _Target:
    return _Target(platform_of(request).data_spaces.session, rest)


def _special(kind: str, target: Callable[..., _Target]) -> None:
    """The six data routes for one special collection (``.algo`` or ``.session``)."""
    label = "a model's own collection" if kind == "algo" else "a call tree's scratch space"
    summaries = {
        "get": f"List or read {label}",
        "head": f"Whether a file or folder of {label} exists",
        "put": f"Write a file in {label}",
        "create": f"Create a folder in {label}",
        "update": f"Refused: {label} has no ACL",
        "delete": f"Delete a file or folder of {label}",
    }
    _family("special", f"/data/.{kind}{{rest:path}}", target, summaries)


_special("algo", _algo)
_special("session", _session)


# /v1/data/{path}: collections, or a connector's s3://... -------------------------------------
def _data(request: Request, path: str) -> _Target:
    spaces = platform_of(request).data_spaces
    if is_connector_path(path):
        return _Target(spaces.connectors, path, _NAMED, connector=True)
    return _Target(spaces.collections, path, _NAMED_WITH_ACL)


_family(
    "data",
    "/data/{path:path}",
    _data,
    {
        "get": "List the root, an owner's collections or a folder; read a file or an ACL",
        "head": "Whether a file or folder exists (X-Data-Type, X-Error-Message)",
        "put": "Write a file (streamed, atomic, at most max_data_file_bytes)",
        "create": "Create a collection (under an owner) or a folder (in a collection)",
        "update": "Set a collection's read ACL",
        "delete": "Delete a file, a folder or a collection (non-empty: force=true)",
    },
)


# /v1/connector/{connector}/{path} --------------------------------------------------------------
def _connector(request: Request, connector: str, path: str) -> _Target:
    connectors = platform_of(request).data_spaces.connectors
    return _Target(connectors, f"{connector}://{path}", _NAMED, connector=True)


_family(
    "connector",
    "/connector/{connector}/{path:path}",
    _connector,
    {
        "get": "List a connector's folder or read its file",
        "head": "Whether a connector's file or folder exists (X-Data-Type)",
        "put": "Write a file through a connector (streamed, max_data_file_bytes)",
        "create": "Create a folder through a connector",
        "delete": "Delete a connector's file or folder (non-empty: force=true)",
    },
)
