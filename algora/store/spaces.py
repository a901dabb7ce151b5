"""Hosted data spaces: one interface over every place ``/v1/data`` and ``/v1/connector`` reach.

A :class:`DataSpace` is a service: it takes a :class:`~algora.auth.principals.Caller` and plain
arguments, owns the rules (who may read, write, list and delete where, ACL changes) and every
database session, returns the frozen views below and raises :mod:`algora.errors` classes. The
routes (``algora.protocols.data.routes``) parse the wire, pick a space, call it in a thread and
render its answer in Algorithmia's shapes. The spaces:

- :class:`~algora.store.collection_space.CollectionSpace`: ``data://owner/collection/...``;
- :class:`~algora.store.model_space.ModelSpace`: a model's own ``data://.algo/...`` and a call
  tree's ``data://.session/...``;
- :class:`~algora.store.connector_space.ConnectorSpace`: ``s3://bucket/key`` through the
  admin's connectors.

Every operation has two steps, so that the route can name the resource in the audit row before
the caller is authorized: :meth:`DataSpace.locate` parses a path (no I/O), and the blocking
methods authorize and act. A write is authorized once (:meth:`DataSpace.writable`) and then
carried out with the target it returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from algora.auth.principals import Caller
from algora.store.collections import Entry, Listing

__all__ = [
    "Acl",
    "DataSpace",
    "Folder",
    "Opened",
    "Page",
    "Readable",
    "Upload",
    "WriteAction",
]

WriteAction = Literal["put", "create", "acl", "delete"]
"""What a write does: write a file, create a folder or collection, set an ACL, delete."""


class Readable(Protocol):
    """An open file or object body: read in chunks, then closed (closing never blocks)."""

    def read(self, size: int = ..., /) -> bytes: ...

    def close(self) -> None: ...


class Upload(Protocol):
    """A file or object being written: nothing is visible under its name until ``commit``."""

    def write(self, chunk: bytes, /) -> None: ...

    def commit(self) -> int: ...

    def abort(self) -> None:
        """Drop what was written; safe to call more than once."""
        ...


Opened = tuple[Readable, int]
"""A file to stream, and its size."""


@dataclass(frozen=True)
class Folder:
    name: str
    acl: tuple[str, ...] | None = None
    """A collection's read ACL, in a listing of an owner's collections; None elsewhere."""


@dataclass(frozen=True)
class Page:
    """One page of a folder: its folders, its files, and the marker of the next page."""

    folders: tuple[Folder, ...] = ()
    files: tuple[Entry, ...] = ()
    marker: str | None = None

    @classmethod
    def of(cls, listing: Listing) -> Page:
        return cls(
            tuple(Folder(e.name) for e in listing.entries if e.is_dir),
            tuple(e for e in listing.entries if not e.is_dir),
            listing.marker,
        )


@dataclass(frozen=True)
class Acl:
    """A collection's read ACL; ``read`` None where the space has none (Algorithmia's client
    then reports none)."""

    read: tuple[str, ...] | None


class Located(Protocol):
    @property
    def url(self) -> str:
        """The path as the caller named it (``data://...``, ``s3://...``)."""
        ...


class Target(Located, Protocol):
    @property
    def audit_url(self) -> str:
        """What the audit row names (a connector's path names the connector that served)."""
        ...


L = TypeVar("L", bound=Located)
T = TypeVar("T", bound=Target)


class DataSpace(Protocol[L, T]):
    """A hosted-data space; every method but :meth:`locate` and :meth:`child` may block."""

    @property
    def max_file_bytes(self) -> int: ...

    def locate(self, caller: Caller, path: str) -> L:
        """The checked place ``path`` names (no I/O: the route audits it before any check)."""
        ...

    def get(
        self, caller: Caller, where: L, *, acl: bool, marker: str | None, limit: int
    ) -> Page | Opened | Acl:
        """A folder's page, an open file, or (``acl``) the read ACL."""
        ...

    def kind(self, caller: Caller, where: L) -> str:
        """``file`` or ``directory``; NotFound when nothing is there."""
        ...

    def writable(self, caller: Caller, where: L, action: WriteAction) -> T:
        """The target of a write, once the caller may do ``action`` there."""
        ...

    def start_upload(self, target: T) -> Upload: ...

    def uploaded(self, target: T) -> None:
        """After an upload was committed (housekeeping)."""
        ...

    def child(self, parent: T, name: str, body: dict[str, Any]) -> T:
        """The folder or collection ``name`` that a create body asks for, inside ``parent``."""
        ...

    def create(self, caller: Caller, target: T) -> None: ...

    def set_acl(self, caller: Caller, target: T, body: Any) -> tuple[str, ...]:
        """Set the read ACL that ``body`` (``{"acl": {"read": [...]}}``) gives; return it."""
        ...

    def delete(self, target: T, *, force: bool) -> int:
        """Delete a file, a folder (non-empty only with ``force``) or a collection; return how
        many files went."""
        ...
