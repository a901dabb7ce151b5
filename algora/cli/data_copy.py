"""What ``algora data cp`` does: plan a copy between local files and hosted data, then do it.

A copy is planned whole before the first byte moves: the source tree is walked, every name is
checked, and what already exists at the destination is found. Names that cannot be a local or
remote file name (``..``, slashes, control characters) and files that would be replaced without
``--force`` stop the copy before anything is written. Downloads go to a temporary file renamed
into place, and never leave the destination folder (a link inside it is not followed out);
uploads are written atomically by the server. So every file ends up whole or not at all.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from algora.errors import Conflict, InvalidInput, NotFound
from algora.sdk.client import Client
from algora.sdk.data import DataHandle, Progress, check_name, is_remote

__all__ = ["Bars", "Copy", "plan_copy"]

Rel = tuple[str, ...]
Bars = Callable[[str, int | None], AbstractContextManager[Progress]]
"""Opens a progress display for one file (its label and size) and yields its callback."""
Side = Path | DataHandle


@dataclass
class Copy:
    """A planned copy: folders to make (parents first) and files to send, under two roots."""

    source: Side
    target: Side
    dirs: list[Rel] = field(default_factory=list)
    files: list[tuple[Rel, int | None]] = field(default_factory=list)
    existing: dict[Rel, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    copied: int = 0
    copied_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        return sum(size or 0 for _rel, size in self.files)

    def run(self, bars: Bars) -> None:
        """Make the folders, then copy the files, one whole file at a time."""
        for rel in self.dirs:
            if self.existing.get(rel) != "directory":
                self._mkdir(rel)
        for rel, _size in self.files:
            self._copy_file(rel, bars)
            self.copied += 1

    def _at(self, root: Side, rel: Rel) -> Side:
        if isinstance(root, Path):
            return root.joinpath(*rel)
        handle = root
        for name in rel:
            handle = handle.child(name)
        return handle

    def _mkdir(self, rel: Rel) -> None:
        target = self._at(self.target, rel)
        if isinstance(target, DataHandle):
            target.mkdir(parents=not rel, exist_ok=True)  # the folders on the way to the root
            return
        assert isinstance(self.target, Path)
        target.mkdir(mode=0o700, exist_ok=True)
        self.check_inside(target)

    def check_inside(self, path: Path) -> None:
        """Refuse a local path that leaves the destination folder (through a link in it)."""
        assert isinstance(self.target, Path)
        if not path.resolve().is_relative_to(self.target.resolve()):
            raise InvalidInput(f"'{path}' leads outside '{self.target}' (a link?): not followed")

    def _copy_file(self, rel: Rel, bars: Bars) -> None:
        source, target = self._at(self.source, rel), self._at(self.target, rel)
        label = "/".join(rel) or source.name
        if isinstance(source, Path):
            assert isinstance(target, DataHandle)
            with source.open("rb") as handle:
                size = os.fstat(handle.fileno()).st_size
            with bars(label, size) as progress:
                target.upload(source, progress=progress)
            self.copied_bytes += size
            return
        with source.open() as reader, bars(label, reader.size) as progress:
            if isinstance(target, Path):
                if rel:
                    self.check_inside(target.parent)
                self.copied_bytes += reader.save(target, progress=progress)
            else:
                target.write(reader, size=reader.size, progress=progress)
                self.copied_bytes += reader.received


def _local_kind(path: Path) -> str | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(st.st_mode):
        return "directory"
    return "file" if stat.S_ISREG(st.st_mode) else "other"


def _walk_local(root: Path, copy: Copy, rel: Rel = ()) -> None:
    copy.dirs.append(rel)
    with os.scandir(root.joinpath(*rel)) as entries:
        found = sorted(entries, key=lambda e: e.name)
    for entry in found:
        where = "/".join((*rel, entry.name))
        if entry.is_symlink() or not (entry.is_dir() or entry.is_file()):
            copy.skipped.append(where)
            continue
        try:
            check_name(entry.name)
        except InvalidInput as error:
            raise InvalidInput(f"cannot upload '{where}': {error.message}") from None
        if entry.is_dir():
            _walk_local(root, copy, (*rel, entry.name))
        else:
            copy.files.append(((*rel, entry.name), entry.stat().st_size))


def _walk_remote(root: DataHandle, rel: Rel = ()) -> Iterator[tuple[Rel, str, int | None]]:
    """Every folder and file under ``root``, parents first, each listed name checked."""
    yield rel, "directory", None
    handle = root
    for name in rel:
        handle = handle.child(name)
    for entry in handle.list():
        try:
            check_name(entry.name)
        except InvalidInput as error:
            raise InvalidInput(
                f"refusing to copy {handle.uri}: its listing names {entry.name!r}, which is "
                f"not a safe file name ({error.message}); nothing was copied"
            ) from None
        if entry.is_dir:
            yield from _walk_remote(root, (*rel, entry.name))
        else:
            yield (*rel, entry.name), "file", entry.size


def _source(client: Client, text: str) -> tuple[Side, str, bool]:
    """The source, its name and whether it is a folder."""
    if is_remote(text):
        handle = client.data(text)
        kind = handle.kind()
        if kind is None:
            raise NotFound(f"nothing at {handle.uri} (or you may not read it)")
        return handle, handle.name, kind == "directory"
    path = Path(text)
    kind = _local_kind(path)
    if kind is None:
        raise NotFound(f"no local file or folder '{text}'")
    if kind == "other":
        raise InvalidInput(f"'{text}' is neither a file nor a folder")
    return path, path.resolve().name, kind == "directory"


def _target(client: Client, text: str, name: str) -> tuple[Side, str | None]:
    """Where the copy goes: into ``text`` when it is a folder (or ends with a slash), else
    ``text`` itself; and what is there now."""
    into = text.endswith("/") or (not is_remote(text) and text.endswith(os.sep))
    side: Side = client.data(text) if is_remote(text) else Path(text)
    kind = side.kind() if isinstance(side, DataHandle) else _local_kind(side)
    if into and kind is None:
        raise NotFound(f"no folder '{text}' to copy into")
    if into or kind == "directory":
        if not name:
            raise InvalidInput("name the file or folder to copy, not a root")
        try:
            check_name(name)
        except InvalidInput as error:
            raise InvalidInput(f"cannot copy {name!r}: {error.message}") from None
        side = side.child(name) if isinstance(side, DataHandle) else side / name
        kind = side.kind() if isinstance(side, DataHandle) else _local_kind(side)
    return side, kind


def plan_copy(
    client: Client, source_text: str, target_text: str, *, recursive: bool, force: bool
) -> Copy:
    """Check everything and list what to do; nothing is written yet."""
    if not is_remote(source_text) and not is_remote(target_text):
        raise InvalidInput(
            "one of SRC and DST must be hosted data (data://owner/collection/..., s3://...); "
            "use cp for local copies"
        )
    source, name, is_dir = _source(client, source_text)
    if is_dir and not recursive:
        raise InvalidInput(f"'{source_text}' is a folder: copy it with -r")
    target, kind = _target(client, target_text, name)
    copy = Copy(source, target)
    if not is_dir:
        if kind == "directory":
            raise Conflict(f"'{target}' is a folder: it cannot be replaced by a file")
        if kind is not None and not force:
            raise Conflict(f"'{target}' exists: use --force to replace it")
        size = source.stat().st_size if isinstance(source, Path) else None
        copy.files.append(((), size))
        return copy
    if kind not in (None, "directory"):
        raise Conflict(f"'{target}' is a file: a folder cannot be copied onto it")
    if isinstance(source, Path):
        _walk_local(source, copy)
    else:
        for rel, entry_kind, size in _walk_remote(source):
            if entry_kind == "directory":
                copy.dirs.append(rel)
            else:
                copy.files.append((rel, size))
    if kind == "directory":
        copy.existing = _existing(copy)
        if isinstance(target, Path):
            for rel in copy.dirs:
                if copy.existing.get(rel) == "directory":
                    copy.check_inside(target.joinpath(*rel))
    clashes = [rel for rel, _size in copy.files if copy.existing.get(rel) == "file"]
    for rel, _size in copy.files:
        if copy.existing.get(rel) not in (None, "file"):
            raise Conflict(f"'{'/'.join(rel)}' is a folder at the destination: nothing was copied")
    for rel in copy.dirs:
        if copy.existing.get(rel) not in (None, "directory"):
            raise Conflict(f"'{'/'.join(rel)}' is a file at the destination: nothing was copied")
    if clashes and not force:
        raise Conflict(
            f"{len(clashes)} file(s) exist at the destination, e.g. '{'/'.join(clashes[0])}': "
            "use --force to replace them; nothing was copied"
        )
    return copy


def _existing(copy: Copy) -> dict[Rel, str]:
    """What is already at the destination, for the names the copy will write."""
    if isinstance(copy.target, DataHandle):
        return {rel: kind for rel, kind, _size in _walk_remote(copy.target)}
    found: dict[Rel, str] = {}
    for rel in [*copy.dirs, *(rel for rel, _size in copy.files)]:
        kind = _local_kind(copy.target.joinpath(*rel)) if rel else "directory"
        if kind is not None:
            found[rel] = kind
    return found
