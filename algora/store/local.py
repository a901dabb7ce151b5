"""Content-addressed blobs on the local file system."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO

from algora.errors import NotFound
from algora.store.base import check_object_key

__all__ = ["LocalBlobStore", "sha256_file"]

_DIGEST = re.compile(r"^[0-9a-f]{64}\Z")
_CHUNK = 1024 * 1024


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class LocalBlobStore:
    """Blobs under ``root/ab/cdef...``; written once through a temp file and a rename."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, digest: str) -> Path:
        if not _DIGEST.match(digest):
            raise NotFound(f"no blob '{digest[:80]}'")
        return self.root / digest[:2] / digest[2:]

    def put_file(self, path: Path) -> str:
        digest = sha256_file(path)
        target = self._path(digest)
        if target.exists():
            return digest
        target.parent.mkdir(exist_ok=True, mode=0o700)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out, path.open("rb") as source:
                while chunk := source.read(_CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            Path(tmp_name).chmod(0o400)
            Path(tmp_name).replace(target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return digest

    def open(self, digest: str) -> BinaryIO:
        path = self._path(digest)
        try:
            return path.open("rb")
        except FileNotFoundError:
            raise NotFound(f"no blob '{digest}'") from None

    def exists(self, digest: str) -> bool:
        return self._path(digest).is_file()

    def _object_path(self, key: str) -> Path:
        return self.root / "objects" / check_object_key(key)

    def put_object(self, key: str, data: bytes) -> None:
        target = self._object_path(key)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            Path(tmp_name).replace(target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def get_object(self, key: str) -> bytes:
        try:
            return self._object_path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no object '{key}'") from None

    def delete_object(self, key: str) -> None:
        path = self._object_path(key)
        path.unlink(missing_ok=True)
        folder = path.parent
        while folder != self.root / "objects":  # drop the folders it leaves empty
            try:
                folder.rmdir()
            except OSError:
                break
            folder = folder.parent

    def ping(self) -> None:
        probe = self.root / ".ping"
        probe.write_bytes(b"ok")
        probe.unlink()
