"""Packing a model folder for publish, and hashing its content: client-safe, standard library.

:func:`pack_directory` writes the deterministic ``tar.gz`` that the SDK and the CLI upload;
:func:`tree_hash` is the content hash that names a version's files. The server's side, checking
and unpacking an archive that nothing vouches for, is :mod:`algora.publishing.archive`.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from algora.errors import InvalidArchive

__all__ = ["EXCLUDED_NAMES", "pack_directory", "tree_hash"]

EXCLUDED_NAMES = frozenset(
    {
        ".git",
        ".venv",
        "venv",
        "__pycache__",
        ".algora",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
    }
)
"""File and folder names that :func:`pack_directory` leaves out, at any depth."""

_EXCLUDED_SUFFIXES = (".pyc",)
_CHUNK = 1024 * 1024

# --------------------------------------------------------------------------------------------
# Packing


def pack_directory(src: Path, dest: BinaryIO | Path) -> None:
    """Write a deterministic ``tar.gz`` of the model folder ``src`` to ``dest``.

    Members are sorted, with mtime 0, uid and gid 0 and no owner names, so that the same
    folder always gives the same bytes. :data:`EXCLUDED_NAMES` and ``*.pyc`` are left out.
    Symbolic links are stored as links and must point inside ``src``; special files are
    refused. Raises :class:`InvalidArchive` naming the offending path.
    """
    root = Path(src)
    if not root.is_dir():
        raise InvalidArchive(f"cannot pack '{src}': not a directory")
    entries = list(_walk_for_pack(root))
    if isinstance(dest, Path):
        with dest.open("wb") as out:
            _write_tar_gz(root, entries, out)
    else:
        _write_tar_gz(root, entries, dest)


def _walk_for_pack(root: Path) -> Iterator[tuple[str, Path]]:
    """Yield ``(archive name, path)`` depth first, each folder's entries sorted by name."""
    real_root = root.resolve()

    def walk(prefix: str, folder: Path) -> Iterator[tuple[str, Path]]:
        with os.scandir(folder) as scan:
            children = sorted(scan, key=lambda entry: entry.name)
        for entry in children:
            if entry.name in EXCLUDED_NAMES or entry.name.endswith(_EXCLUDED_SUFFIXES):
                continue
            name = f"{prefix}{entry.name}"
            path = Path(entry.path)
            if entry.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(real_root):
                    raise InvalidArchive(
                        f"member '{name}': symbolic link points outside the folder"
                    )
                yield name, path
            elif entry.is_dir(follow_symlinks=False):
                yield name, path
                yield from walk(f"{name}/", path)
            elif entry.is_file(follow_symlinks=False):
                yield name, path
            else:
                raise InvalidArchive(f"member '{name}': special files cannot be packed")

    yield from walk("", root)


def _write_tar_gz(root: Path, entries: list[tuple[str, Path]], out: BinaryIO) -> None:
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, path in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                info.type = tarfile.SYMTYPE
                info.mode = 0o777
                info.linkname = _relative_link(root, path)
                tar.addfile(info)
            elif stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.type = tarfile.REGTYPE
                info.mode = 0o755 if st.st_mode & 0o111 else 0o644
                info.size = st.st_size
                with path.open("rb") as data:
                    tar.addfile(info, data)


def _relative_link(root: Path, link: Path) -> str:
    """The link's target, rewritten relative to the link's folder when it is absolute or
    leaves the folder lexically (its resolved target was already checked to stay inside)."""
    target = str(link.readlink())
    link_dir = link.parent.relative_to(root).as_posix()
    lexical = posixpath.normpath(posixpath.join(link_dir, target))
    if not posixpath.isabs(target) and lexical != ".." and not lexical.startswith("../"):
        return target
    real_root = root.resolve()
    resolved = link.resolve().relative_to(real_root).as_posix()
    return posixpath.relpath(resolved, link_dir or ".")


# --------------------------------------------------------------------------------------------
# Hashing


def tree_hash(root: Path) -> str:
    """A sha256 hex digest of a folder's content.

    Covers every entry's relative path (sorted), type, the executable bit and bytes of
    files, and the target of symbolic links; not timestamps, owners or other mode bits.
    """
    root = Path(root)
    entries: list[tuple[str, Path]] = []
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(folder)
        for item in [*dirnames, *filenames]:
            path = base / item
            entries.append((path.relative_to(root).as_posix(), path))
    entries.sort(key=lambda entry: entry[0].split("/"))
    digest = hashlib.sha256(b"algora-tree-v1\0")
    for name, path in entries:
        st = path.lstat()
        encoded = name.encode("utf-8", "surrogateescape")
        if stat.S_ISLNK(st.st_mode):
            record = (
                b"l\0" + encoded + b"\0" + str(path.readlink()).encode("utf-8", "surrogateescape")
            )
        elif stat.S_ISDIR(st.st_mode):
            record = b"d\0" + encoded
        elif stat.S_ISREG(st.st_mode):
            executable = b"x" if st.st_mode & 0o100 else b"-"
            record = b"f\0" + encoded + b"\0" + executable + b"\0" + _file_digest(path)
        else:
            raise InvalidArchive(f"member '{name}': special files cannot be hashed")
        digest.update(len(record).to_bytes(8, "big"))
        digest.update(record)
    return digest.hexdigest()


def _file_digest(path: Path) -> bytes:
    file_hash = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            file_hash.update(chunk)
    return file_hash.hexdigest().encode("ascii")
