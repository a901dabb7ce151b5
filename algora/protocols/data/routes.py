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
from typing import Any

from fastapi import APIRouter, Request
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
_PATH = "/data/{path:path}"
_CONNECTOR_PATH = "/connector/{connector}/{path:path}"
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


# /v1/data/.algo... and /v1/data/.session... ----------------------------------------------------
def _special(kind: str) -> None:
    """The six data routes for one special collection (``.algo`` or ``.session``)."""
    path = f"/data/.{kind}{{rest:path}}"
    label = "a model's own collection" if kind == "algo" else "a call tree's scratch space"

    def space(request: Request) -> Space:
        spaces = platform_of(request).data_spaces
        return spaces.algo if kind == "algo" else spaces.session

    @router.get(
        path,
        summary=f"List or read {label}",
        response_model=None,
        openapi_extra=audited("data.read"),
    )
    async def get_special(
        request: Request,
        caller: ReadData,
        rest: str,
        acl: bool = False,
        marker: Marker = None,
        limit: Limit = PAGE_SIZE,
    ) -> Response:
        return await _get(space(request), caller, rest, acl, marker, limit)

    @router.head(
        path,
        summary=f"Whether a file or folder of {label} exists",
        openapi_extra=audited("data.read"),
    )
    async def head_special(request: Request, caller: ReadData, rest: str) -> Response:
        return await _head(request, space(request), caller, rest)

    @router.put(path, summary=f"Write a file in {label}", openapi_extra=audited("data.put"))
    async def put_special(request: Request, caller: WriteData, rest: str) -> JSONResponse:
        return await _put(request, space(request), caller, rest)

    @router.post(path, summary=f"Create a folder in {label}", openapi_extra=audited("data.create"))
    async def create_special(request: Request, caller: WriteData, rest: str) -> JSONResponse:
        return await _post(request, space(request), caller, rest, _NAMED)

    @router.patch(path, summary=f"Refused: {label} has no ACL", openapi_extra=audited("data.acl"))
    async def update_special(request: Request, caller: WriteData, rest: str) -> JSONResponse:
        return await _patch(request, space(request), caller, rest)

    @router.delete(
        path, summary=f"Delete a file or folder of {label}", openapi_extra=audited("data.delete")
    )
    async def delete_special(
        request: Request, caller: WriteData, rest: str, force: bool = False
    ) -> JSONResponse:
        return await _delete(request, space(request), caller, rest, force)


_special("algo")
_special("session")


# /v1/data/{path}: collections, or a connector's s3://... -------------------------------------
def _data_space(request: Request, path: str) -> Space:
    spaces = platform_of(request).data_spaces
    return spaces.connectors if is_connector_path(path) else spaces.collections


@router.get(
    _PATH,
    summary="List the root, an owner's collections or a folder; read a file or an ACL",
    response_model=None,
    openapi_extra=audited("data.read"),
)
async def get_data(
    request: Request,
    caller: ReadData,
    path: str,
    acl: bool = False,
    marker: Marker = None,
    limit: Limit = PAGE_SIZE,
) -> Response:
    return await _get(_data_space(request, path), caller, path, acl, marker, limit)


@router.head(
    _PATH,
    summary="Whether a file or folder exists (X-Data-Type, X-Error-Message)",
    openapi_extra=audited("data.read"),
)
async def head_data(request: Request, caller: ReadData, path: str) -> Response:
    return await _head(request, _data_space(request, path), caller, path)


@router.put(
    _PATH,
    summary="Write a file (streamed, atomic, at most max_data_file_bytes)",
    openapi_extra=audited("data.put"),
)
async def put_data(request: Request, caller: WriteData, path: str) -> JSONResponse:
    return await _put(request, _data_space(request, path), caller, path)


@router.post(
    _PATH,
    summary="Create a collection (under an owner) or a folder (in a collection)",
    openapi_extra=audited("data.create"),
)
async def create_data(request: Request, caller: WriteData, path: str) -> JSONResponse:
    shape = _NAMED if is_connector_path(path) else _NAMED_WITH_ACL
    return await _post(request, _data_space(request, path), caller, path, shape)


@router.patch(_PATH, summary="Set a collection's read ACL", openapi_extra=audited("data.acl"))
async def update_data(request: Request, caller: WriteData, path: str) -> JSONResponse:
    if is_connector_path(path):
        raise BadRequest(NO_ACLS)  # whatever the path: connectors have no ACLs at all
    return await _patch(request, _data_space(request, path), caller, path)


@router.delete(
    _PATH,
    summary="Delete a file, a folder or a collection (non-empty: force=true)",
    openapi_extra=audited("data.delete"),
)
async def delete_data(
    request: Request, caller: WriteData, path: str, force: bool = False
) -> JSONResponse:
    return await _delete(request, _data_space(request, path), caller, path, force)


# /v1/connector/{connector}/{path} --------------------------------------------------------------
def _connector(request: Request) -> Space:
    return platform_of(request).data_spaces.connectors


def _raw(connector: str, path: str) -> str:
    return f"{connector}://{path}"


@router.get(
    _CONNECTOR_PATH,
    summary="List a connector's folder or read its file",
    response_model=None,
    openapi_extra=audited("data.read"),
)
async def get_connector(
    request: Request,
    caller: ReadData,
    connector: str,
    path: str,
    acl: bool = False,
    marker: Marker = None,
    limit: Limit = PAGE_SIZE,
) -> Response:
    return await _get(_connector(request), caller, _raw(connector, path), acl, marker, limit)


@router.head(
    _CONNECTOR_PATH,
    summary="Whether a connector's file or folder exists (X-Data-Type)",
    openapi_extra=audited("data.read"),
)
async def head_connector(request: Request, caller: ReadData, connector: str, path: str) -> Response:
    return await _head(request, _connector(request), caller, _raw(connector, path))


@router.put(
    _CONNECTOR_PATH,
    summary="Write a file through a connector (streamed, max_data_file_bytes)",
    openapi_extra=audited("data.put"),
)
async def put_connector(
    request: Request, caller: WriteData, connector: str, path: str
) -> JSONResponse:
    return await _put(request, _connector(request), caller, _raw(connector, path))


@router.post(
    _CONNECTOR_PATH,
    summary="Create a folder through a connector",
    openapi_extra=audited("data.create"),
)
async def create_connector(
    request: Request, caller: WriteData, connector: str, path: str
) -> JSONResponse:
    raw = _raw(connector, path)
    return await _post(request, _connector(request), caller, raw, _NAMED)


@router.delete(
    _CONNECTOR_PATH,
    summary="Delete a connector's file or folder (non-empty: force=true)",
    openapi_extra=audited("data.delete"),
)
async def delete_connector(
    request: Request, caller: WriteData, connector: str, path: str, force: bool = False
) -> JSONResponse:
    return await _delete(request, _connector(request), caller, _raw(connector, path), force)
