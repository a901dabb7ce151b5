"""Data connectors as a hosted-data space: ``s3://bucket/key``, Algorithmia-compatible.

Algorithmia's client sends ``client.file("s3://bucket/key")`` to ``/v1/data/s3://bucket/key``
and its REST API names the same object ``/v1/connector/s3/bucket/key``; both reach this space.
``s3://`` picks, among the connectors that list the bucket (``Settings.data_connectors``, in
order), the first the caller may use for the request; ``s3+NAME://`` names the connector. The
root lists the buckets the caller may read.

Who may do what is the admin's choice per connector: its ``readers`` read, its ``writers``
(an organization's viewers excepted) write, admins do both; anyone else finds nothing (404),
and a reader who writes is refused (403). The key's ``data:read`` / ``data:write`` scopes
narrow this; a connector's bucket is the resource ``s3.CONNECTOR/BUCKET`` (principal names
hold no dots, so it never names a collection), e.g. ``data:read:s3.lake/*``. Connector
folders have no ACLs of their own. The bytes go through :mod:`algora.store.connectors`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.principals import Caller
from algora.auth.scopes import has_scope
from algora.db.tables import Principal
from algora.errors import BadRequest, NotFound, PermissionDenied
from algora.settings import CONNECTOR_NAME_PATTERN
from algora.store.connectors import Connectors, S3Connector, check_bucket, check_key_segment
from algora.store.spaces import Acl, Folder, Opened, Page, Upload, WriteAction

__all__ = [
    "NO_ACLS",
    "ConnectorSpace",
    "ConnectorTarget",
    "Location",
    "is_connector_path",
    "parse_location",
    "scope_resource",
]

NO_ACLS = "connector folders have no ACLs: the connector's settings decide who reads"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):/{1,2}(.*)$", re.DOTALL)
"""``scheme://rest``; one slash is accepted too, for proxies that merge ``//``."""
_OUTSIDE = {
    "put": "name a file inside a bucket: s3://bucket/key",
    "delete": "delete a file or folder inside a bucket, not a bucket",
    "create": "a connector's buckets are set by an admin; create folders inside one",
}


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

    @property
    def url(self) -> str:
        return self.url_as(self.label)

    def url_as(self, label: str | None) -> str:
        scheme = f"s3+{label}" if label else "s3"
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


@dataclass(frozen=True)
class ConnectorTarget:
    """A file or folder inside a bucket, and the connector that writes it for the caller."""

    location: Location
    bucket: str
    connector: S3Connector

    @property
    def url(self) -> str:
        return self.location.url

    @property
    def audit_url(self) -> str:
        return self.location.url_as(self.connector.name)


# Who may use a connector --------------------------------------------------------------------
@dataclass(frozen=True)
class _Identity:
    """A principal, with the names of its organizations and its role in each."""

    caller: Caller
    orgs: dict[str, str]


def _may_read(identity: _Identity, connector: S3Connector) -> bool:
    if identity.caller.is_admin:
        return True
    names = {*connector.config.readers, *connector.config.writers}
    return "*" in names or identity.caller.name in names or any(o in names for o in identity.orgs)


def _may_write(identity: _Identity, connector: S3Connector) -> bool:
    if identity.caller.is_admin:
        return True
    writers = set(connector.config.writers)
    return (
        "*" in writers
        or identity.caller.name in writers
        or any(org in writers and role != "viewer" for org, role in identity.orgs.items())
    )


def _all(
    identities: list[_Identity], rule: Callable[[_Identity, S3Connector], bool]
) -> Callable[[S3Connector], bool]:
    """The rule, holding for every identity (and false when there are none)."""

    def check(connector: S3Connector) -> bool:
        return bool(identities) and all(rule(i, connector) for i in identities)

    return check


def scope_resource(connector: S3Connector, bucket: str) -> str:
    """What a ``data:read`` / ``data:write`` pattern is matched against."""
    return f"s3.{connector.name}/{bucket}"


@dataclass(frozen=True, eq=False)
class ConnectorSpace:
    """The admin's S3 connectors; reads the registry only for organizations' names."""

    sessions: sessionmaker[Session]
    connectors: Connectors
    max_file_bytes: int

    def locate(self, caller: Caller, path: str) -> Location:
        return parse_location(path)

    # rules --------------------------------------------------------------------------------------
    def _identities(self, caller: Caller) -> list[_Identity]:
        """Whose rights bound the caller: itself or, for a credential held by model code, every
        principal its delegation names (none while the model loads: no connector at all)."""
        bounds = caller.delegation.bounds if caller.delegation is not None else (caller,)
        org_ids = {org for bound in bounds for org, _role in bound.memberships}
        names: dict[int, str] = {}
        if org_ids:
            with self.sessions() as session:
                rows = session.execute(
                    select(Principal.id, Principal.name).where(Principal.id.in_(sorted(org_ids)))
                ).all()
            names = {org_id: name for org_id, name in rows}
        return [
            _Identity(b, {names[o]: role for o, role in b.memberships if o in names})
            for b in bounds
        ]

    def _candidates(self, location: Location) -> list[S3Connector]:
        if location.label is not None:
            named = self.connectors.get(location.label)
            return [named] if named is not None else []
        return self.connectors.all()

    def choose(self, caller: Caller, location: Location, need: str) -> S3Connector:
        """The connector that serves ``location``'s bucket to the caller for ``need`` (read or
        write). A bucket the caller may not read is reported missing, whatever the reason."""
        if location.bucket is None:
            raise BadRequest("name a bucket: s3://bucket/...")
        bucket = location.bucket
        identities = self._identities(caller)
        reads, writes = _all(identities, _may_read), _all(identities, _may_write)
        serving = [c for c in self._candidates(location) if bucket in c.buckets]
        readable = [c for c in serving if reads(c)]
        if not readable:
            raise NotFound(f"no data connector you may read serves '{location.url}'")
        usable = readable if need == "read" else [c for c in readable if writes(c)]
        if not usable:
            raise PermissionDenied(
                f"'{caller.name}' may read but not write '{location.url}': "
                "an admin adds writers to the connector"
            )
        scope = f"data:{need}"
        for connector in usable:
            resource = scope_resource(connector, bucket)
            if has_scope(caller.scopes, scope, resource, is_admin=caller.is_admin):
                return connector
        resource = scope_resource(usable[0], bucket)
        raise PermissionDenied(f"key '{caller.key_id}' lacks the '{scope}' scope for '{resource}'")

    def _buckets(self, caller: Caller, location: Location) -> list[str]:
        """The buckets the caller may read, for the root listing."""
        reads = _all(self._identities(caller), _may_read)
        found: dict[str, None] = {}
        for connector in self._candidates(location):
            if not reads(connector):
                continue
            for bucket in connector.buckets:
                resource = scope_resource(connector, bucket)
                if has_scope(caller.scopes, "data:read", resource, is_admin=caller.is_admin):
                    found[bucket] = None
        return sorted(found)

    # reads --------------------------------------------------------------------------------------
    def get(
        self, caller: Caller, where: Location, *, acl: bool, marker: str | None, limit: int
    ) -> Page | Opened | Acl:
        if where.bucket is None:
            buckets = self._buckets(caller, where)
            if where.label is not None and not buckets:
                raise NotFound(f"no data connector you may read serves '{where.url}'")
            return Page(folders=tuple(Folder(b) for b in buckets))
        connector = self.choose(caller, where, "read")
        if acl:
            return Acl(None)  # no ACLs: the connector's settings decide who reads
        opened = connector.open(where.bucket, where.parts)
        if opened is not None:
            return opened  # closing its body drops the connection; never blocks
        listed = connector.list_folder(where.bucket, where.parts, marker, limit)
        if listed is None:
            raise NotFound(f"no file or folder '{where.url}'")
        return Page.of(listed)

    def kind(self, caller: Caller, where: Location) -> str:
        if where.bucket is None:
            if not self._buckets(caller, where):
                raise NotFound(f"no data connector you may read serves '{where.url}'")
            return "directory"
        connector = self.choose(caller, where, "read")
        kind = connector.kind(where.bucket, where.parts)
        if kind is None:
            raise NotFound(f"no file or folder '{where.url}'")
        return kind

    # writes -------------------------------------------------------------------------------------
    def writable(self, caller: Caller, where: Location, action: WriteAction) -> ConnectorTarget:
        if action == "acl":
            raise BadRequest(NO_ACLS)
        if where.bucket is None or (action != "create" and not where.parts):
            raise BadRequest(_OUTSIDE[action])
        return ConnectorTarget(where, where.bucket, self.choose(caller, where, "write"))

    def start_upload(self, target: ConnectorTarget) -> Upload:
        """Multipart past one part; a cancelled request leaves no parts in S3."""
        return target.connector.start_upload(target.bucket, target.location.parts)

    def uploaded(self, target: ConnectorTarget) -> None:
        return None

    def child(self, parent: ConnectorTarget, name: str, body: dict[str, Any]) -> ConnectorTarget:
        if "acl" in body:
            raise BadRequest("connector folders have no ACLs: the connector's settings decide")
        where = parent.location
        created = Location(where.label, where.bucket, (*where.parts, check_key_segment(name)))
        return ConnectorTarget(created, parent.bucket, parent.connector)

    def create(self, caller: Caller, target: ConnectorTarget) -> None:
        """A folder: an empty ``prefix/`` object."""
        target.connector.mkdir(target.bucket, target.location.parts)

    def set_acl(self, caller: Caller, target: ConnectorTarget, body: Any) -> tuple[str, ...]:
        raise BadRequest(NO_ACLS)

    def delete(self, target: ConnectorTarget, *, force: bool) -> int:
        return target.connector.delete(target.bucket, target.location.parts, force=force)
