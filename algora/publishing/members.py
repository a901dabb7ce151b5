"""An archive's members and the rules each must pass before a byte is written.

:func:`tar_members` and :func:`zip_members` read an archive's table of contents into
:class:`Member` records, checking each name (:func:`check_name`) and link target as they go;
:func:`validate_members` then checks the whole set: no duplicates, the member and byte caps,
and every link resolving inside the archive. :mod:`algora.publishing.archive` extracts only
what passed (its docstring states the rules).
"""

from __future__ import annotations

import re
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from typing import Literal

from algora.errors import InvalidArchive

__all__ = [
    "Kind",
    "Member",
    "check_link_text",
    "check_name",
    "show",
    "tar_members",
    "validate_members",
    "zip_members",
]

_MAX_LINK_HOPS = 40
_MAX_NAME_BYTES = 4096
_MAX_COMPONENT_BYTES = 255
_MAX_LINK_TARGET = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")

Kind = Literal["file", "dir", "symlink", "hardlink"]


@dataclass(frozen=True)
class Member:
    name: str  # normalized, relative POSIX path
    kind: Kind
    size: int
    executable: bool
    link: str = ""  # symlink target (as written) or hard link source (normalized name)
    ref: tarfile.TarInfo | zipfile.ZipInfo | None = None  # where the data comes from


def tar_members(tf: tarfile.TarFile, max_members: int, max_bytes: int) -> list[Member]:
    members: list[Member] = []
    declared = 0
    count = 0
    for info in tf:
        count += 1
        if count > max_members:
            raise InvalidArchive(
                f"member '{info.name}': archive has more than {max_members} members"
            )
        name = check_name(info.name, info.isdir())
        if name is None:
            continue  # the root folder itself
        if info.isreg():
            if info.issparse():
                raise InvalidArchive(f"member '{info.name}': sparse files are not allowed")
            declared += info.size
            if declared > max_bytes:
                raise InvalidArchive(
                    f"member '{info.name}': declared size exceeds the {max_bytes}-byte limit"
                )
            kind: Kind = "file"
        elif info.isdir():
            kind = "dir"
        elif info.issym():
            kind = "symlink"
        elif info.islnk():
            kind = "hardlink"
        else:
            raise InvalidArchive(
                f"member '{info.name}': device files, FIFOs and other special files are not allowed"
            )
        link = ""
        if kind == "symlink":
            link = check_link_text(info.name, info.linkname)
        elif kind == "hardlink":
            check_link_text(info.name, info.linkname)
            try:
                target = check_name(info.linkname, False)
            except InvalidArchive as exc:
                raise InvalidArchive(f"member '{info.name}': hard link target: {exc}") from None
            if target is None:
                raise InvalidArchive(f"member '{info.name}': hard link has an empty target")
            link = target
        members.append(
            Member(
                name=name,
                kind=kind,
                size=info.size if kind == "file" else 0,
                executable=bool(info.mode & 0o111),
                link=link,
                ref=info,
            )
        )
    return members


def zip_members(zf: zipfile.ZipFile, max_members: int) -> list[Member]:
    infos = zf.infolist()
    if len(infos) > max_members:
        raise InvalidArchive(
            f"member '{infos[max_members].orig_filename}': archive has more than "
            f"{max_members} members"
        )
    members: list[Member] = []
    for info in infos:
        raw_name = info.orig_filename
        if info.flag_bits & 0x1:
            raise InvalidArchive(f"member '{show(raw_name)}': encrypted members are not allowed")
        mode = info.external_attr >> 16
        file_type = stat.S_IFMT(mode)
        is_dir = raw_name.endswith("/") or file_type == stat.S_IFDIR
        name = check_name(raw_name, is_dir)
        if name is None:
            continue
        if file_type not in (0, stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK):
            raise InvalidArchive(
                f"member '{raw_name}': device files, FIFOs and other special files are not allowed"
            )
        link = ""
        if file_type == stat.S_IFLNK:
            if info.file_size > _MAX_LINK_TARGET:
                raise InvalidArchive(f"member '{raw_name}': symbolic link target is too long")
            with zf.open(info) as handle:
                target = handle.read(_MAX_LINK_TARGET + 1).decode("utf-8")
            link = check_link_text(raw_name, target)
            kind: Kind = "symlink"
        elif is_dir:
            kind = "dir"
        else:
            kind = "file"
        members.append(
            Member(
                name=name,
                kind=kind,
                size=info.file_size if kind == "file" else 0,
                executable=bool(mode & 0o111),
                link=link,
                ref=info,
            )
        )
    return members


def show(name: str) -> str:
    return name.encode("unicode_escape").decode("ascii") if _CONTROL.search(name) else name


_NAME_WORDS = (
    "name contains NUL or control characters",
    "backslash in name (Windows paths not allowed)",
    "absolute path",
)
_TARGET_WORDS = (
    "link target contains NUL or control characters",
    "backslash in link target",
    "link target is an absolute path",
)


def _refuse_unsafe(shown: str, path: str, words: tuple[str, str, str]) -> None:
    """The rules a member's name and a link's target share; ``words`` say, in this order,
    which one ``path`` broke: control characters, a backslash, an absolute path."""
    control, backslash, absolute = words
    if _CONTROL.search(path):
        raise InvalidArchive(f"member '{shown}': {control}")
    if "\\" in path:
        raise InvalidArchive(f"member '{shown}': {backslash}")
    if path.startswith("/") or _DRIVE.match(path):
        raise InvalidArchive(f"member '{shown}': {absolute}")


def check_name(raw: str, is_dir: bool) -> str | None:
    """Normalize a member name, raising on any unsafe form; ``None`` for the root folder."""
    shown = show(raw)
    _refuse_unsafe(shown, raw, _NAME_WORDS)
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise InvalidArchive(f"member '{shown}': path escapes the archive root")
    if not parts:
        if is_dir and raw.strip("/") in ("", "."):
            return None
        raise InvalidArchive(f"member '{shown}': empty name")
    name = "/".join(parts)
    if len(name.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES or any(
        len(part.encode("utf-8", "surrogateescape")) > _MAX_COMPONENT_BYTES for part in parts
    ):
        raise InvalidArchive(f"member '{shown}': name too long")
    return name


def check_link_text(member: str, target: str) -> str:
    shown = show(member)
    if not target:
        raise InvalidArchive(f"member '{shown}': link has an empty target")
    if len(target) > _MAX_LINK_TARGET:
        raise InvalidArchive(f"member '{shown}': link target is too long")
    _refuse_unsafe(shown, target, _TARGET_WORDS)
    return target


def validate_members(members: list[Member], *, max_members: int, max_bytes: int) -> None:
    if len(members) > max_members:
        raise InvalidArchive(
            f"member '{members[max_members].name}': archive has more than {max_members} members"
        )
    by_name: dict[str, Member] = {}
    declared = 0
    for member in members:
        if member.name in by_name:
            raise InvalidArchive(f"member '{member.name}': duplicate member name")
        if member.kind == "hardlink":
            source = by_name.get(member.link)
            if source is None or source.kind != "file":
                raise InvalidArchive(
                    f"member '{member.name}': hard link must name an earlier regular file "
                    f"of the archive"
                )
        by_name[member.name] = member
        declared += member.size
        if declared > max_bytes:
            raise InvalidArchive(
                f"member '{member.name}': declared size exceeds the {max_bytes}-byte limit"
            )
    links = {m.name: m.link for m in members if m.kind == "symlink"}
    for member in members:
        parts = member.name.split("/")
        for depth in range(1, len(parts)):
            ancestor = by_name.get("/".join(parts[:depth]))
            if ancestor is not None and ancestor.kind != "dir":
                raise InvalidArchive(
                    f"member '{member.name}': path passes through a non-directory member "
                    f"'{ancestor.name}'"
                )
        if member.kind == "symlink":
            _resolve_inside(member.name, parts[:-1], member.link, links)


def _resolve_inside(name: str, start: list[str], target: str, links: dict[str, str]) -> None:
    """Follow ``target`` through the archive's own links; raise if it ever leaves the root."""
    current = list(start)
    pending = target.split("/")
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not current:
                raise InvalidArchive(f"member '{name}': symbolic link points outside the archive")
            current.pop()
            continue
        current.append(part)
        nested = links.get("/".join(current))
        if nested is not None:
            hops += 1
            if hops > _MAX_LINK_HOPS:
                raise InvalidArchive(f"member '{name}': too many levels of symbolic links")
            current.pop()
            pending = nested.split("/") + pending
