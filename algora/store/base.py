"""The blob store interface: content-addressed, write-once."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Protocol

__all__ = ["BlobStore"]


class BlobStore(Protocol):
    def put_file(self, path: Path) -> str:
        """Store a file's bytes; return their SHA-256 hex digest (the blob's address)."""
        ...

    def open(self, digest: str) -> BinaryIO:
        """Open a stored blob for reading; raise NotFound when absent."""
        ...

    def exists(self, digest: str) -> bool: ...

    def ping(self) -> None:
        """Raise if the store cannot be read or written."""
        ...
