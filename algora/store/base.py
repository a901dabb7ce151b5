"""The blob store interface: content-addressed, write-once."""

from __future__ import annotations

import re
from pathlib import Path
from typing import BinaryIO, Protocol

from algora.errors import NotFound

__all__ = ["BlobStore", "check_object_key"]

_OBJECT_KEY = re.compile(r"^[a-z][a-z0-9-]{0,31}(?:/[A-Za-z0-9][A-Za-z0-9_.-]{0,127}){1,6}\Z")


def check_object_key(key: str) -> str:
    """``key`` when it names an object (``kind/segment/...``: no empty, dot-led or ``..``
    segment, nothing that could leave the store's root); NotFound otherwise."""
    if not _OBJECT_KEY.match(key) or ".." in key:
        raise NotFound(f"no object '{key[:80]}'")
    return key


class BlobStore(Protocol):
    def put_file(self, path: Path) -> str:
        """Store a file's bytes; return their SHA-256 hex digest (the blob's address)."""
        ...

    def open(self, digest: str) -> BinaryIO:
        """Open a stored blob for reading; raise NotFound when absent."""
        ...

    def exists(self, digest: str) -> bool: ...

    def put_object(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (see :func:`check_object_key`), replacing any there:
        keyed objects, unlike blobs, are written and deleted by name."""
        ...

    def get_object(self, key: str) -> bytes:
        """The object's bytes; raise NotFound when absent."""
        ...

    def delete_object(self, key: str) -> None:
        """Remove the object, if there is one."""
        ...

    def ping(self) -> None:
        """Raise if the store cannot be read or written."""
        ...
