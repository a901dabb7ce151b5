"""The audit journal: where the audit writer makes rows durable before the database has them.

On SQLite, a commit per batch of rows cost the machine most of what the audit log cost (file
locks and WAL writes, a thousand times a second under load). So the writer appends each batch,
as the JSON lines it received, to a journal file of its own (one ``write``) and acknowledges
it; it commits the journaled rows to the database a few times a second, each commit recording
in ``audit_journal_marks`` how far into the journal it reached. A row in the journal survives
the writer's or the gateway's crash, as a commit to SQLite's WAL does at ``synchronous=NORMAL``
(neither survives a power cut on its own), and a writer that starts commits what a writer that
died left behind (:func:`recover`) before it takes rows of its own.

Each journal is locked (``flock``) by its writer for as long as the writer runs, so a journal
whose lock can be taken belongs to a writer that is gone. The directory sits beside the database
file (``registry.db-audit-journal/``), owner-only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from algora.audit.chain import Wire, append_sqlite, bindable, check_wire

__all__ = ["Journal", "journal_directory", "recover", "set_aside", "unbindable_error"]

logger = logging.getLogger(__name__)

_SUFFIX = ".journal"
# Rows committed per transaction when a journal is replayed.
_REPLAY_CHUNK = 5000


def journal_directory(url: URL) -> Path | None:
    """Where the journals of a SQLite database file live; None for any other database."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    database = Path(url.database).resolve()
    return database.with_name(database.name + "-audit-journal")


class Journal:
    """This writer's own journal: created new, locked, appended to, removed when done."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)  # mkdir leaves an existing folder's mode as it was
        self.name = uuid.uuid4().hex + _SUFFIX
        self.path = directory / self.name
        # Locked under a name no recovery looks at, then renamed: a recovering writer can never
        # take the lock of a journal that is being created.
        staging = directory / f".{self.name}.new"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        self._fd = os.open(staging, flags, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            staging.rename(self.path)
        except BaseException:
            os.close(self._fd)
            staging.unlink(missing_ok=True)
            raise
        self.size = 0
        self.broken = False

    def append(self, data: bytes) -> None:
        """Write all of ``data`` or, on an error, none of it (the journal is cut back).

        A journal that cannot be cut back after a failed write is ``broken``: it takes no more
        rows (they would follow a partial line), and the writer moves on to a new one.
        """
        if self.broken:
            raise OSError("the journal holds a partial write and takes no more rows")
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            try:
                os.ftruncate(self._fd, self.size)
            except OSError:
                self.broken = True
            raise
        self.size += len(data)

    def close(self, *, remove: bool) -> None:
        """Release the journal; ``remove`` it when every row in it is committed."""
        if remove:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)  # releases the lock


def recover(directory: Path, driver: sqlite3.Connection) -> int:
    """Commit the rows of journals whose writers are gone, then remove them; return how many.

    A journal still locked belongs to a running writer and is left alone.
    """
    if not directory.is_dir():
        return 0
    recovered = 0
    for path in sorted(directory.glob("*" + _SUFFIX)):
        with _orphan(path) as fd:
            if fd is None:
                continue
            recovered += _replay(path, fd, driver)
            path.unlink()
            with driver:
                driver.execute("DELETE FROM audit_journal_marks WHERE journal = ?", (path.name,))
    return recovered


@contextlib.contextmanager
def _orphan(path: Path) -> Iterator[int | None]:
    """The journal's descriptor, locked, if no writer holds it; None if one does."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:  # another recovery finished it
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        if not path.exists():  # removed by the recovery that held the lock before us
            yield None
            return
        yield fd
    finally:
        os.close(fd)


def _replay(path: Path, fd: int, driver: sqlite3.Connection) -> int:
    name = path.name
    found = driver.execute(
        "SELECT committed_bytes FROM audit_journal_marks WHERE journal = ?", (name,)
    ).fetchone()
    offset = found[0] if found is not None else 0
    size = os.fstat(fd).st_size
    data = os.pread(fd, max(0, size - offset), offset)
    # A last line with no newline was cut off by a crash in the middle of a write: the writer
    # never acknowledged it.
    complete = data[: data.rfind(b"\n") + 1]
    wires: list[Wire] = []
    ends: list[int] = []
    position = offset
    for line in complete.splitlines(keepends=True):
        position += len(line)
        wire = _parse(line)
        if wire is None:
            logger.error("journal %s: skipping an unreadable row at byte %d", name, position)
            continue
        wires.append(wire)
        ends.append(position)
    for start in range(0, len(wires), _REPLAY_CHUNK):
        chunk = wires[start : start + _REPLAY_CHUNK]
        mark = (name, ends[start + len(chunk) - 1])
        try:
            append_sqlite(driver, chunk, mark=mark)
        except Exception as error:
            if not unbindable_error(error):
                raise
            chunk = set_aside(path.parent, chunk)
            append_sqlite(driver, chunk, mark=mark)
    if wires:
        logger.warning(
            "committed %d audit row(s) from the journal of a writer that stopped", len(wires)
        )
    return len(wires)


def unbindable_error(error: BaseException) -> bool:
    """Whether a failed commit failed on a value sqlite3 cannot bind (a row, not the database)."""
    binding = (OverflowError, TypeError, ValueError, sqlite3.InterfaceError)
    return isinstance(error, binding) or type(error) is sqlite3.ProgrammingError


def set_aside(directory: Path, wires: list[Wire]) -> list[Wire]:
    """Move the rows sqlite3 cannot bind to ``rejected.jsonl`` beside the journals, with an
    error in the log; return the others. (``check_wire`` lets none through: a safety net, so
    that one bad row cannot stop the audit log for good.)"""
    bad = [wire for wire in wires if not bindable(wire)]
    if not bad:
        return wires
    fd = os.open(
        directory / "rejected.jsonl",
        os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW,
        0o600,
    )
    with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as rejected:
        for wire in bad:
            rejected.write(json.dumps(wire) + "\n")
    logger.error(
        "set aside %d audit row(s) the database cannot take, in %s",
        len(bad),
        directory / "rejected.jsonl",
    )
    return [wire for wire in wires if bindable(wire)]


def _parse(line: bytes) -> Wire | None:
    try:
        wire: Any = json.loads(line)
        check_wire(wire)
    except ValueError:
        return None
    return wire  # type: ignore[no-any-return]
