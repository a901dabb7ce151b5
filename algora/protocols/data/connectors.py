"""Data connectors in the hosted-data API: ``s3://bucket/key``, Algorithmia-compatible.

Algorithmia's client sends ``client.file("s3://bucket/key")`` to ``/v1/data/s3://bucket/key``
(``data.py`` hands every ``scheme://`` path here), and its REST API names the same object
``/v1/connector/s3/bucket/key``; both are served by the functions below. ``s3://`` picks,
among the connectors that list the bucket (``Settings.data_connectors``, in order), the first
the caller may use for the request; ``s3+NAME://`` names the connector. ``GET s3://`` lists the
buckets the caller may read.

Who may do what is the admin's choice per connector: its ``readers`` read, its ``writers``
(an organization's viewers excepted) write, admins do both; anyone else finds nothing (404),
and a reader who writes is refused (403). The key's ``data:read`` / ``data:write`` scopes
narrow this; a connector's bucket is the resource ``s3.CONNECTOR/BUCKET`` (principal names
hold no dots, so it never names a collection), e.g. ``data:read:s3.lake/*``. Connector
folders have no ACLs of their own.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select

from algora.auth.principals import Caller
from algora.auth.scopes import has_scope
from algora.db.tables import Principal
from algora.errors import BadRequest, NotFound, PermissionDenied
from algora.gateway.auditing import trail_of
from algora.gateway.deps import platform_of
from algora.gateway.permissions import PermissionRoute
from algora.platform import Platform
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
from algora.settings import CONNECTOR_NAME_PATTERN
from algora.store.collections import PAGE_SIZE
from algora.store.connectors import S3Connector, check_bucket, check_key_segment

__all__ = [
    "Location",
    "choose",
    "create",
    "delete",
    "get",
    "head",
    "is_connector_path",
    "no_acls",
    "parse_location",
    "put",
    "router",
]

router = APIRouter(prefix="/v1", route_class=PermissionRoute, tags=["data"])

_PATH = "/connector/{connector}/{path:path}"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):/{1,2}(.*)$", re.DOTALL)
"""``scheme://rest``; one slash is accepted too, for proxies that merge ``//``."""


def is_connector_path(path: str) -> bool:
    """Whether a ``/v1/data`` path names a connector (``s3://...``) rather than a collection.

    Owners' names hold no ``:``, so no collection path is taken for a connector's.
    """
    return _SCHEME.match(path) is not None


@dataclass(frozen=True)
class Location:
    """A parsed ``s3[+label]://bucket/parts...``; bucket is None for the connectors' root."""

    label: str | None
    bucket: str | None
    parts: tuple[str, ...]

    def url(self, label: str | None = None) -> str:
        named = label or self.label
        scheme = f"s3+{named}" if named else "s3"
        return f"{scheme}://" + "/".join([self.bucket, *self.parts] if self.bucket else [])


def parse_location(raw: str) -> Location:
    """Check the scheme, the bucket and every key segment before anything is looked up."""
    match = _SCHEME.match(raw)
    if match is None:
        raise BadRequest("a connector path is s3://bucket/key or s3+NAME://bucket/key")
    scheme, rest = match.groups()
    label: str | None = None
    if scheme.startswith("s3+"):
        label = scheme[3:]
        if not CONNECTOR_NAME_PATTERN.fullmatch(label):
            raise NotFound(f"no data connector '{scheme[:70]}'")
    elif scheme != "s3":
        raise NotFound(
            f"no data connector '{scheme[:70]}': this server reaches s3:// and s3+NAME:// "
            "(data:// paths go to /v1/data/OWNER/...)"
        )
    text = rest[:-1] if rest.endswith("/") else rest
    if not text:
        return Location(label, None, ())
    segments = text.split("/")
    bucket = check_bucket(segments[0])
    return Location(label, bucket, tuple(check_key_segment(s) for s in segments[1:]))


# Who may use a connector --------------------------------------------------------------------
@dataclass(frozen=True)
class Identity:
    """A principal, with the names of its organizations and its role in each."""

    caller: Caller
    orgs: dict[str, str]


def _identities(platform: Platform, caller: Caller) -> list[Identity]:
    """Whose rights bound the caller: itself or, for a credential held by model code, every
    principal its delegation names (none while the model loads: no connector at all)."""
    bounds = caller.delegation.bounds if caller.delegation is not None else (caller,)
    org_ids = {org for bound in bounds for org, _role in bound.memberships}
    names: dict[int, str] = {}
    if org_ids:
        with platform.sessions() as session:
            rows = session.execute(
                select(Principal.id, Principal.name).where(Principal.id.in_(sorted(org_ids)))
            ).all()
        names = {org_id: name for org_id, name in rows}
    return [
        Identity(b, {names[o]: role for o, role in b.memberships if o in names}) for b in bounds
    ]


def _all(
    identities: list[Identity], rule: Callable[[Identity, S3Connector], bool]
) -> Callable[[S3Connector], bool]:
    """The rule, holding for every identity (and false when there are none)."""

    def check(connector: S3Connector) -> bool:
        return bool(identities) and all(rule(i, connector) for i in identities)

    return check


def may_read(identity: Identity, connector: S3Connector) -> bool:
    if identity.caller.is_admin:
        return True
    names = {*connector.config.readers, *connector.config.writers}
    return "*" in names or identity.caller.name in names or any(o in names for o in identity.orgs)


def may_write(identity: Identity, connector: S3Connector) -> bool:
    if identity.caller.is_admin:
        return True
    writers = set(connector.config.writers)
    return (
        "*" in writers
        or identity.caller.name in writers
        or any(org in writers and role != "viewer" for org, role in identity.orgs.items())
    )


def scope_resource(connector: S3Connector, bucket: str) -> str:
    """What a ``data:read`` / ``data:write`` pattern is matched against."""
    return f"s3.{connector.name}/{bucket}"


def _candidates(platform: Platform, location: Location) -> list[S3Connector]:
    connectors = platform.connectors
    if location.label is not None:
        named = connectors.get(location.label)
        return [named] if named is not None else []
    return connectors.all()


def choose(platform: Platform, caller: Caller, location: Location, need: str) -> S3Connector:
    """The connector that serves ``location``'s bucket to the caller for ``need`` (read or
    write). A bucket the caller may not read is reported missing, whatever the reason."""
    assert location.bucket is not None  # the root is handled by the callers
    bucket = location.bucket
    identities = _identities(platform, caller)
    reads, writes = _all(identities, may_read), _all(identities, may_write)
    serving = [c for c in _candidates(platform, location) if bucket in c.buckets]
    readable = [c for c in serving if reads(c)]
    if not readable:
        raise NotFound(f"no data connector you may read serves '{location.url()}'")
    usable = readable if need == "read" else [c for c in readable if writes(c)]
    if not usable:
        raise PermissionDenied(
            f"'{caller.name}' may read but not write '{location.url()}': "
            "an admin adds writers to the connector"
        )
    scope = f"data:{need}"
    for connector in usable:
        if has_scope(
            caller.scopes, scope, scope_resource(connector, bucket), is_admin=caller.is_admin
        ):
            return connector
    resource = scope_resource(usable[0], bucket)
    raise PermissionDenied(f"key '{caller.key_id}' lacks the '{scope}' scope for '{resource}'")


def _buckets(platform: Platform, caller: Caller, location: Location) -> list[str]:
    """The buckets the caller may read, for the root listing."""
    reads = _all(_identities(platform, caller), may_read)
    found: dict[str, None] = {}
    for connector in _candidates(platform, location):
        if not reads(connector):
            continue
        for bucket in connector.buckets:
            resource = scope_resource(connector, bucket)
            if has_scope(caller.scopes, "data:read", resource, is_admin=caller.is_admin):
                found[bucket] = None
    return sorted(found)


# The operations, shared by /v1/data/s3://... and /v1/connector/... ------------------------
def _audit_write(request: Request, action: str, resource: str) -> None:
    trail = trail_of(request)
    trail.action = trail.action or action  # /v1/connector paths are not classified
    trail.resource = resource


async def _to_write(
    request: Request, caller: Caller, raw: str, action: str, refusal: str
) -> tuple[Location, str, S3Connector]:
    """A file or folder inside a bucket (else BadRequest saying ``refusal``), its bucket, and
    the connector that writes it for the caller; audited as ``action``."""
    _audit_write(request, action, raw)
    where = parse_location(raw)
    if where.bucket is None or not where.parts:
        raise BadRequest(refusal)
    connector = await asyncio.to_thread(choose, platform_of(request), caller, where, "write")
    _audit_write(request, action, where.url(connector.name))
    return where, where.bucket, connector


async def get(
    request: Request,
    caller: Caller,
    raw: str,
    *,
    acl: bool = False,
    marker: str | None = None,
    limit: int = PAGE_SIZE,
) -> Response:
    """List the buckets, list a folder, or stream a file."""
    platform = platform_of(request)
    where = parse_location(raw)

    def load() -> dict[str, Any] | Opened:
        if where.bucket is None:
            buckets = _buckets(platform, caller, where)
            if where.label is not None and not buckets:
                raise NotFound(f"no data connector you may read serves '{where.url()}'")
            return {"folders": [{"name": b} for b in buckets], "files": []}
        connector = choose(platform, caller, where, "read")
        if acl:
            return {}  # no ACLs: the connector's settings decide who reads
        opened = connector.open(where.bucket, where.parts)
        if opened is not None:
            return opened  # closing its body drops the connection; never blocks
        listed = connector.list_folder(where.bucket, where.parts, marker, limit)
        if listed is None:
            raise NotFound(f"no file or folder '{where.url()}'")
        return listing_body(listed)

    return await read_response(load)


async def head(request: Request, caller: Caller, raw: str) -> Response:
    """200 with ``X-Data-Type`` (file or directory), else the error's status and message."""
    platform = platform_of(request)

    def probe() -> str:
        where = parse_location(raw)
        if where.bucket is None:
            if not _buckets(platform, caller, where):
                raise NotFound(f"no data connector you may read serves '{where.url()}'")
            return "directory"
        connector = choose(platform, caller, where, "read")
        kind = connector.kind(where.bucket, where.parts)
        if kind is None:
            raise NotFound(f"no file or folder '{where.url()}'")
        return kind

    return await head_response(request, probe)


async def put(request: Request, caller: Caller, raw: str) -> JSONResponse:
    """Stream a file to S3 (multipart past one part), at most ``max_data_file_bytes``."""
    refusal = "name a file inside a bucket: s3://bucket/key"
    where, bucket, connector = await _to_write(request, caller, raw, "data.put", refusal)
    refuse_declared_oversize(request, connector.max_file_bytes)
    upload = await asyncio.to_thread(connector.start_upload, bucket, where.parts)
    await receive_upload(request, upload)  # a cancelled request leaves no parts in S3
    return JSONResponse({"result": where.url()})


async def create(request: Request, caller: Caller, raw: str) -> JSONResponse:
    """Create a folder (an empty ``prefix/`` object) inside a bucket: ``{"name": ...}``."""
    platform = platform_of(request)
    _audit_write(request, "data.create", raw)
    where = parse_location(raw)
    if where.bucket is None:
        raise BadRequest("a connector's buckets are set by an admin; create folders inside one")
    connector = await asyncio.to_thread(choose, platform, caller, where, "write")
    body, name = await named_body(request, '{"name": ...}')
    if "acl" in body:
        raise BadRequest("connector folders have no ACLs: the connector's settings decide")
    created = Location(where.label, where.bucket, (*where.parts, check_key_segment(name)))
    _audit_write(request, "data.create", created.url(connector.name))
    await asyncio.to_thread(connector.mkdir, where.bucket, created.parts)
    return JSONResponse({"result": created.url()})


async def delete(request: Request, caller: Caller, raw: str, *, force: bool) -> JSONResponse:
    """Delete a file, or a folder (a non-empty one only with ``force``)."""
    refusal = "delete a file or folder inside a bucket, not a bucket"
    where, bucket, connector = await _to_write(request, caller, raw, "data.delete", refusal)
    deleted = await asyncio.to_thread(connector.delete, bucket, where.parts, force=force)
    return JSONResponse({"result": {"deleted": deleted}})


def no_acls() -> BadRequest:
    return BadRequest("connector folders have no ACLs: the connector's settings decide who reads")


# /v1/connector/<connector>/<path> -----------------------------------------------------------
def _raw(connector: str, path: str) -> str:
    return f"{connector}://{path}"


@router.get(_PATH, summary="List a connector's folder or read its file", response_model=None)
async def get_connector(
    request: Request,
    caller: ReadData,
    connector: str,
    path: str,
    acl: bool = False,
    marker: Marker = None,
    limit: Limit = PAGE_SIZE,
) -> Response:
    return await get(request, caller, _raw(connector, path), acl=acl, marker=marker, limit=limit)


@router.head(_PATH, summary="Whether a connector's file or folder exists (X-Data-Type)")
async def head_connector(request: Request, caller: ReadData, connector: str, path: str) -> Response:
    return await head(request, caller, _raw(connector, path))


@router.put(_PATH, summary="Write a file through a connector (streamed, max_data_file_bytes)")
async def put_connector(
    request: Request, caller: WriteData, connector: str, path: str
) -> JSONResponse:
    return await put(request, caller, _raw(connector, path))


@router.post(_PATH, summary="Create a folder through a connector")
async def create_connector(
    request: Request, caller: WriteData, connector: str, path: str
) -> JSONResponse:
    return await create(request, caller, _raw(connector, path))


@router.delete(_PATH, summary="Delete a connector's file or folder (non-empty: force=true)")
async def delete_connector(
    request: Request, caller: WriteData, connector: str, path: str, force: bool = False
) -> JSONResponse:
    return await delete(request, caller, _raw(connector, path), force=force)
