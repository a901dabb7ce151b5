"""Hosted data on the local file system: ``root/<owner>/<collection>/<path>``.

Every name a user sends is checked segment by segment (no ``..``, ``.``, empty segments, NUL,
control characters or backslashes) and the joined path is resolved and checked against the
root before anything touches the disk. Files are written through a temporary file in the same
folder, flushed, synced and renamed over the target, so a reader sees the old file or the new
one, never half of one. Uploads are streamed to disk and stopped at the size cap. Nothing here
is group- or world-readable: folders are 0700, files 0600.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from algora.errors import BadRequest, Conflict, NotFound, PayloadTooLarge

__all__ = [
    "COLLECTION_PATTERN",
    "CollectionStore",
    "Entry",
    "Listing",
    "Upload",
    "check_segment",
]

COLLECTION_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}\Z")
"""A collection's name: letters, digits, ``_``, ``-`` and ``.``, not starting with a dot."""
_TEMP_PREFIX = ".algora-upload-"
_CHUNK = 1024 * 1024
_MAX_SEGMENT_BYTES = 255
PAGE_SIZE = 1000


def check_segment(segment: str) -> str:
    """One path segment of a file or folder name, or BadRequest."""
    if segment in ("", ".", ".."):
        raise BadRequest("a data path has no empty, '.' or '..' segments")
    if any(ord(c) < 0x20 or c in "\x7f\\" for c in segment):
        raise BadRequest("a data path holds no control characters or backslashes")
    if segment.startswith(_TEMP_PREFIX):
        raise BadRequest(f"names starting with '{_TEMP_PREFIX}' are reserved")
    if len(segment.encode("utf-8", errors="surrogatepass")) > _MAX_SEGMENT_BYTES:
        raise BadRequest(f"a name is at most {_MAX_SEGMENT_BYTES} bytes")
    try:
        segment.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("a data path is valid UTF-8") from None
    return segment


def check_collection(name: str) -> str:
    if not COLLECTION_PATTERN.match(name):
        raise BadRequest(
            "a collection name is 1-64 letters, digits, '_', '-' or '.', not starting with '.'"
        )
    return name


@dataclass(frozen=True)
class Entry:
    name: str
    is_dir: bool
    size: int
    modified: datetime

    @property
    def last_modified(self) -> str:
        """Algorithmia's timestamp format: ``2016-01-06T00:52:34.000Z``."""
        return self.modified.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.modified:%f}"[:3] + "Z"


@dataclass(frozen=True)
class Listing:
    entries: list[Entry]
    marker: str | None
    """Opaque: pass it back to get the next page; None on the last page."""


def _encode_marker(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode("utf-8")).decode("ascii").rstrip("=")


def _decode_marker(marker: str) -> str:
    try:
        padded = marker + "=" * (-len(marker) % 4)
        return base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise BadRequest("the marker is not one this server gave out") from None


def _mkdir_private(path: Path) -> None:
    """Create ``path`` (not its parents) with mode 0700, whatever the umask allows more."""
    path.mkdir(mode=0o700)
    path.chmod(0o700)


class Upload:
    """A file being written: chunks go to a temp file beside the target; ``commit`` renames."""

    def __init__(self, target: Path, limit: int) -> None:
        self.target = target
        self.limit = limit
        self.size = 0
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=_TEMP_PREFIX)
        # Held while the upload lives: a sweep (sweep_interrupted_uploads) removes only temp
        # files nobody holds, those of an upload whose process died, on any gateway.
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._temp = Path(name)
        self._handle: BinaryIO = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            self.abort()
            raise PayloadTooLarge(f"a data file is at most {self.limit} bytes")
        self._handle.write(chunk)

    def commit(self) -> int:
        """Make the file visible under its name, atomically; return its size."""
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            if self.target.is_dir():
                raise Conflict(f"'{self.target.name}' is a folder")
            self._temp.replace(self.target)
        except BaseException:
            self.abort()
            raise
        return self.size

    def abort(self) -> None:
        if not self._handle.closed:
            self._handle.close()
        self._temp.unlink(missing_ok=True)


def sweep_interrupted_uploads(root: Path) -> int:
    """Remove the temp files under ``root`` of uploads whose process died (a crash or kill
    mid-upload); an upload in progress holds its file's lock and is left alone. Returns how
    many were removed."""
    removed = 0
    for temp in root.rglob(f"{_TEMP_PREFIX}*"):
        try:
            fd = os.open(temp, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # an upload still writing it
        else:
            temp.unlink(missing_ok=True)
            removed += 1
        finally:
            os.close(fd)
    return removed


class CollectionStore:
    """Collections of files under ``root``; owners and collections are checked by the caller."""

    def __init__(self, root: Path, max_file_bytes: int) -> None:
        self.root = root
        self.max_file_bytes = max_file_bytes
        if not root.is_dir():
            root.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            root.mkdir(mode=0o700, exist_ok=True)
        self._resolved_root = root.resolve()

    def path(self, owner: str, collection: str, parts: tuple[str, ...] = ()) -> Path:
        """The file system path of ``owner/collection/parts...``, checked against the root."""
        check_segment(owner)
        check_collection(collection)
        for part in parts:
            check_segment(part)
        candidate = self._resolved_root.joinpath(owner, collection, *parts)
        resolved = candidate.resolve()
        if resolved != candidate or not resolved.is_relative_to(self._resolved_root):
            raise BadRequest("the data path leaves its collection")
        return resolved

    def ensure_collection(self, owner: str, collection: str) -> Path:
        """The collection's folder, created (0700) when missing."""
        path = self.path(owner, collection)
        for folder in (path.parent, path):
            if not folder.is_dir():
                with contextlib.suppress(FileExistsError):
                    _mkdir_private(folder)
        return path

    def mkdir(self, owner: str, collection: str, parts: tuple[str, ...]) -> None:
        """A folder inside a collection; its parent must exist."""
        path = self.path(owner, collection, parts)
        if not path.parent.is_dir():
            raise NotFound(f"no folder '{'/'.join(parts[:-1])}' in '{owner}/{collection}'")
        try:
            _mkdir_private(path)
        except FileExistsError:
            raise Conflict(f"'{'/'.join(parts)}' already exists") from None

    def ensure_folder(self, owner: str, collection: str, parts: tuple[str, ...]) -> None:
        """A folder inside a collection, its parents and the collection created as needed."""
        self.ensure_collection(owner, collection)
        for depth in range(1, len(parts) + 1):
            folder = self.path(owner, collection, parts[:depth])
            if not folder.is_dir():
                with contextlib.suppress(FileExistsError):
                    _mkdir_private(folder)
                if not folder.is_dir():
                    raise Conflict(f"'{'/'.join(parts[:depth])}' is a file")

    def kind(self, owner: str, collection: str, parts: tuple[str, ...]) -> str | None:
        """``file``, ``directory`` or None when nothing is there."""
        try:
            st = self.path(owner, collection, parts).lstat()
        except FileNotFoundError:
            return None
        if stat.S_ISDIR(st.st_mode):
            return "directory"
        return "file" if stat.S_ISREG(st.st_mode) else None

    def open(self, owner: str, collection: str, parts: tuple[str, ...]) -> tuple[BinaryIO, int]:
        """An open file and its size; the handle keeps the version it opened."""
        path = self.path(owner, collection, parts)
        try:
            handle = path.open("rb")
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"no file '{'/'.join(parts)}' in '{owner}/{collection}'") from None
        except IsADirectoryError:
            raise BadRequest(f"'{'/'.join(parts)}' is a folder") from None
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            handle.close()
            raise BadRequest(f"'{'/'.join(parts)}' is a folder")
        return handle, st.st_size

    def start_upload(self, owner: str, collection: str, parts: tuple[str, ...]) -> Upload:
        if not parts:
            raise BadRequest("name a file inside the collection")
        target = self.path(owner, collection, parts)
        if not target.parent.is_dir():
            raise NotFound(f"no folder '{'/'.join(parts[:-1])}' in '{owner}/{collection}'")
        if target.is_dir():
            raise Conflict(f"'{'/'.join(parts)}' is a folder")
        return Upload(target, self.max_file_bytes)

    def list(
        self,
        owner: str,
        collection: str,
        parts: tuple[str, ...],
        marker: str | None = None,
        limit: int = PAGE_SIZE,
    ) -> Listing:
        """One page of a folder's entries, sorted by name."""
        folder = self.path(owner, collection, parts)
        after = _decode_marker(marker) if marker else None
        try:
            names = sorted(p.name for p in folder.iterdir() if not p.name.startswith(_TEMP_PREFIX))
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"no folder '{'/'.join(parts)}' in '{owner}/{collection}'") from None
        if after is not None:
            names = [n for n in names if n > after]
        entries: list[Entry] = []
        for name in names:
            try:
                st = (folder / name).lstat()
            except FileNotFoundError:
                continue  # deleted while listing
            if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
                continue
            modified = datetime.fromtimestamp(st.st_mtime, UTC)
            entries.append(Entry(name, stat.S_ISDIR(st.st_mode), st.st_size, modified))
            if len(entries) > limit:
                break
        more = len(entries) > limit
        page = entries[:limit]
        return Listing(page, _encode_marker(page[-1].name) if more and page else None)

    def delete(
        self, owner: str, collection: str, parts: tuple[str, ...], *, force: bool = False
    ) -> int:
        """Delete a file or a folder (a non-empty one only with ``force``); files deleted."""
        path = self.path(owner, collection, parts)
        try:
            st = path.lstat()
        except FileNotFoundError:
            where = "/".join(parts) or collection
            raise NotFound(f"nothing at '{where}' in '{owner}/{collection}'") from None
        if not stat.S_ISDIR(st.st_mode):
            path.unlink(missing_ok=True)
            return 1
        files = sum(len(f) for _d, _s, f in os.walk(path))
        if (files or any(path.iterdir())) and not force:
            raise BadRequest("the folder is not empty: delete it with force=true")
        shutil.rmtree(path)
        return files
