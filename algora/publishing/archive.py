"""Model archives as they arrive at publish: checked member by member, then safely extracted.

Packing a folder and hashing its content are client-safe and live in
:mod:`algora.modelfolder.packing`.

A published model arrives as a tar (plain, gzip, bzip2, xz) or zip archive. Nothing in it is
trusted: :func:`safe_extract` validates every member before it writes a byte, extracts into a
temporary folder beside the destination while counting the bytes actually written, and renames
that folder into place only when everything succeeded. Any violation raises
:class:`~algora.errors.InvalidArchive` naming the member and the rule it broke.

Rules for every member:

- a relative POSIX path: no leading ``/``, no drive (``C:``), no ``..`` component, no
  backslash, no NUL or other control character, not empty, not a duplicate of another member;
- a regular file, a directory, a symbolic link or a hard link; never a device, FIFO or other
  special file; no path may pass through a symbolic link of the archive;
- a link's target resolves, through the links of the archive, to a place inside the archive;
  a hard link names an earlier regular file;
- at most ``max_members`` members declaring at most ``max_bytes`` in total, and no more than
  ``max_bytes`` actually written whatever the headers say.

Files are written with mode ``0o600`` (``0o700`` when the archive marks them executable),
folders ``0o700`` (owner only: nothing of a model is for other local users); set-id and sticky
bits and ownership are never applied.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Literal

from algora.errors import InvalidArchive
from algora.publishing.members import (
    Member,
    tar_members,
    validate_members,
    zip_members,
)

__all__ = ["move_into_place", "safe_extract"]


_FILE_MODE = 0o600
_EXEC_MODE = 0o700
_DIR_MODE = 0o700
_CHUNK = 1024 * 1024

# Errors the decompressors and archive readers raise on damaged input.
_CORRUPT = (
    tarfile.TarError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    gzip.BadGzipFile,
    NotImplementedError,
    UnicodeDecodeError,
)


# --------------------------------------------------------------------------------------------
# Extraction


class _TooLarge(Exception):
    pass


class _BoundedReader(io.RawIOBase):
    """A read-only view of a decompressed stream that refuses to go past ``limit`` bytes.

    The tar reader skips member data by seeking, which on a compressed stream means
    decompressing; this bound keeps a lying or endless stream from costing unbounded time
    or memory (a PAX header may declare any size).
    """

    def __init__(self, raw: io.BufferedIOBase, limit: int) -> None:
        super().__init__()
        self._raw = raw
        self._limit = limit

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._raw.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET and offset > self._limit:
            raise _TooLarge
        position = self._raw.seek(offset, whence)
        if position > self._limit:
            raise _TooLarge
        return position

    def read(self, size: int | None = -1) -> bytes:
        remaining = self._limit - self._raw.tell() + 1
        if size is None or size < 0 or size > remaining:
            size = remaining
        data = self._raw.read(size)
        if self._raw.tell() > self._limit:
            raise _TooLarge
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]  # RawIOBase types the buffer as the Buffer protocol
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def move_into_place(source: Path, final: Path) -> None:
    """Move an extracted and built source to its content-addressed folder ``final``; when
    another build already stored identical content there, drop this copy."""
    try:
        source.rename(final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(source)


def safe_extract(archive: Path, dest: Path, *, max_bytes: int, max_members: int) -> list[str]:
    """Validate and extract ``archive`` into ``dest``; return the member names extracted.

    ``dest`` must not exist or be an empty folder; it appears only when extraction succeeded.
    A tar root entry ``.`` (as written by ``tar -C folder .``) is accepted and skipped.
    Raises :class:`InvalidArchive` on any rule violation and on damaged archives.
    """
    archive = Path(archive)
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(f"extraction destination {dest} exists and is not empty")
    kind = _detect(archive)
    with contextlib.ExitStack() as stack:
        try:
            if kind == "zip":
                zf = stack.enter_context(zipfile.ZipFile(archive))
                members = zip_members(zf, max_members)
                reader: Callable[[Member], IO[bytes]] = lambda m: _open_zip(zf, m)  # noqa: E731
            else:
                raw = stack.enter_context(_open_decompressed(archive, kind))
                # Headers and padding add at most a few blocks per member on top of the data.
                bound = max_bytes + (max_members + 2) * 8 * tarfile.BLOCKSIZE + _CHUNK
                bounded = stack.enter_context(_BoundedReader(raw, bound))
                tf = stack.enter_context(tarfile.open(fileobj=bounded, mode="r:"))
                members = tar_members(tf, max_members, max_bytes)
                _drain(bounded)  # reach the end so the decompressor checks its checksum
                reader = lambda m: _open_tar(tf, m)  # noqa: E731
        except _TooLarge:
            raise InvalidArchive(
                f"archive expands beyond the {max_bytes}-byte limit while reading its headers"
            ) from None
        except (*_CORRUPT, OSError) as exc:
            raise InvalidArchive(f"corrupt archive: {exc}") from exc
        validate_members(members, max_members=max_members, max_bytes=max_bytes)
        _guard_with_data_filter(members, dest)
        dest.parent.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extract-", dir=dest.parent))
        try:
            _extract_all(members, staging, reader, max_bytes)
            staging.chmod(_DIR_MODE)
            staging.rename(dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return [member.name for member in members]


def _drain(stream: _BoundedReader) -> None:
    while stream.read(_CHUNK):
        pass


def _detect(archive: Path) -> Literal["zip", "gz", "bz2", "xz", "tar"]:
    try:
        with archive.open("rb") as handle:
            head = handle.read(512)
    except OSError as exc:
        raise InvalidArchive(f"cannot read archive: {exc.strerror}") from exc
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gz"
    if head.startswith(b"BZh"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if len(head) == 512 and _looks_like_v7_tar(head):
        return "tar"
    raise InvalidArchive("not a tar or zip archive (unrecognized content)")


def _looks_like_v7_tar(header: bytes) -> bool:
    try:
        tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
    except tarfile.TarError:
        return False
    return True


def _open_decompressed(archive: Path, kind: str) -> io.BufferedIOBase:
    if kind == "gz":
        return gzip.open(archive, "rb")
    if kind == "bz2":
        return bz2.open(archive, "rb")
    if kind == "xz":
        return lzma.open(archive, "rb")
    return archive.open("rb")


def _guard_with_data_filter(members: list[Member], dest: Path) -> None:
    """Second opinion from the standard library's ``data`` extraction filter (tar only)."""
    probe = str(dest.absolute())
    for member in members:
        if not isinstance(member.ref, tarfile.TarInfo):
            continue
        try:
            tarfile.data_filter(member.ref, probe)
        except tarfile.FilterError as exc:
            raise InvalidArchive(
                f"member '{member.name}': refused by the data filter: {exc}"
            ) from None


def _open_tar(tf: tarfile.TarFile, member: Member) -> IO[bytes]:
    handle = tf.extractfile(member.ref) if isinstance(member.ref, tarfile.TarInfo) else None
    if handle is None:
        raise InvalidArchive(f"member '{member.name}': has no data")
    return handle


def _open_zip(zf: zipfile.ZipFile, member: Member) -> IO[bytes]:
    if not isinstance(member.ref, zipfile.ZipInfo):
        raise InvalidArchive(f"member '{member.name}': has no data")
    return zf.open(member.ref)


def _extract_all(
    members: list[Member],
    staging: Path,
    reader: Callable[[Member], IO[bytes]],
    max_bytes: int,
) -> None:
    written = 0
    for member in members:
        path = staging.joinpath(*member.name.split("/"))
        _make_parents(staging, path.parent)
        if member.kind == "dir":
            if not path.is_dir():
                path.mkdir(mode=_DIR_MODE)
            path.chmod(_DIR_MODE)
        elif member.kind == "file":
            written = _write_file(member, path, reader, written, max_bytes)
        elif member.kind == "hardlink":
            source = staging.joinpath(*member.link.split("/"))
            os.link(source, path, follow_symlinks=False)
    # Links last: no file is ever written through one.
    for member in members:
        if member.kind == "symlink":
            path = staging.joinpath(*member.name.split("/"))
            path.symlink_to(member.link)


def _make_parents(staging: Path, folder: Path) -> None:
    missing: list[Path] = []
    while folder != staging and not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir(mode=_DIR_MODE)
        path.chmod(_DIR_MODE)


def _write_file(
    member: Member,
    path: Path,
    reader: Callable[[Member], IO[bytes]],
    written: int,
    max_bytes: int,
) -> int:
    mode = _EXEC_MODE if member.executable else _FILE_MODE
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, mode)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), mode)
        with _archive_errors(member, max_bytes):
            data = reader(member)
        with data:
            while True:
                with _archive_errors(member, max_bytes):
                    chunk = data.read(_CHUNK)
                if not chunk:
                    break
                written += len(chunk)
                if written > max_bytes:
                    raise InvalidArchive(
                        f"member '{member.name}': archive expands beyond the {max_bytes}-byte limit"
                    )
                out.write(chunk)  # local file-system errors propagate unchanged
    return written


@contextlib.contextmanager
def _archive_errors(member: Member, max_bytes: int) -> Iterator[None]:
    """Turn what a damaged or oversized archive makes the readers raise into InvalidArchive."""
    try:
        yield
    except _TooLarge:
        raise InvalidArchive(
            f"member '{member.name}': archive expands beyond the {max_bytes}-byte limit"
        ) from None
    except (*_CORRUPT, OSError, RuntimeError) as exc:
        # Only archive reads run here, so OSError means damaged data (bz2 raises it).
        raise InvalidArchive(f"member '{member.name}': corrupt data: {exc}") from exc
