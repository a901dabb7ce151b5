"""Where the audit writer puts rows: straight into the database, or a journal and then it.

:class:`DirectSink` (PostgreSQL) commits every batch before the writer answers for it.
:class:`JournalSink` (SQLite) appends each batch to the writer's journal and lets the writer
answer at once, while a thread of its own commits the journaled rows in groups: the writer
keeps answering while a commit runs (SQLite releases the GIL while it writes), so a commit
never holds up the calls waiting on their rows.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from algora.audit.chain import Wire, append, append_sqlite, head, sqlite_driver
from algora.audit.journal import Journal, recover, set_aside, unbindable_error

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

__all__ = ["DirectSink", "JournalSink"]

logger = logging.getLogger(__name__)

# Journaled rows are committed once no row has come for COMMIT_QUIET, and at least every
# COMMIT_INTERVAL while rows keep coming: a few large commits instead of one per millisecond.
# While commits fail they are retried every RETRY_INTERVAL.
COMMIT_QUIET = 0.005
COMMIT_INTERVAL = 0.05
RETRY_INTERVAL = 0.25
JOURNAL_ROTATE_BYTES = 16 << 20
_STOP_TIMEOUT = 30.0


class DirectSink:
    """Commits each batch before it is answered."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = engine.connect()
        with self._connection.begin():
            head(self._connection)  # fails here, not on the first call, if it cannot

    def put(self, lines: list[bytes], wires: list[Wire]) -> bool:
        """Commit the rows; False if they could not be."""
        try:
            if self._connection is None:
                self._connection = self._engine.connect()
            append(self._connection, wires)
        except Exception:
            logger.exception("could not commit %d audit row(s)", len(wires))
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            time.sleep(0.05)  # a database that is down: do not spin
            return False
        return True

    def sync(self) -> bool:
        return True  # nothing is ever waiting

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


@dataclass
class _Batch:
    """Rows taken for one commit, with how far into their journal they reach."""

    wires: list[Wire]
    mark: tuple[str, int]  # (journal, bytes)
    reaches: int  # bytes journaled in all, once these are committed
    since: float  # when the first of them was journaled
    retiring: Journal | None  # a full journal these rows end, removed once they are committed


class JournalSink:
    """Journals each batch before it is answered; a thread commits the journal in groups."""

    def __init__(self, engine: Engine, directory: Path, *, max_commit_lag: float) -> None:
        self._engine = engine
        self._directory = directory
        self._max_commit_lag = max_commit_lag
        self._connection: Connection | None = engine.connect()
        recover(directory, sqlite_driver(self._connection))
        with self._connection.begin():
            head(self._connection)
        self._journal = Journal(directory)
        self._changed = threading.Condition()
        # Everything below is guarded by _changed. Byte counts run on across journals.
        self._pending: list[Wire] = []  # journaled, not yet taken by a commit
        self._pending_since: float | None = None  # when the first of them was journaled
        self._batch: _Batch | None = None  # taken, being committed or waiting for a retry
        self._last_input = 0.0
        self._journaled_bytes = 0
        self._committed_bytes = 0
        self._attempts = 0  # commits tried, failed or not
        self._failing = False
        self._refusing = False
        self._retry_at = 0.0
        self._sync_wanted = False
        self._stopping = False
        self._committer = threading.Thread(
            target=self._commit_loop, name="algora-audit-commits", daemon=True
        )
        self._committer.start()

    def lag(self) -> float:
        """Seconds the oldest journaled row not yet in the database has waited (0: none)."""
        with self._changed:
            oldest = self._batch.since if self._batch is not None else self._pending_since
        return 0.0 if oldest is None else max(0.0, time.monotonic() - oldest)

    # the writer's thread -----------------------------------------------------------------
    def put(self, lines: list[bytes], wires: list[Wire]) -> bool:
        """Journal the rows; False if they are not (and must not be answered as durable)."""
        data = b"\n".join(lines) + b"\n"
        now = time.monotonic()
        with self._changed:
            oldest = self._batch.since if self._batch is not None else self._pending_since
            if oldest is not None and now - oldest > self._max_commit_lag:
                # The database has taken nothing for a while: stop taking rows rather than let
                # the journal run far ahead of it. Calls are refused until commits succeed.
                if not self._refusing:
                    logger.error(
                        "refusing audit rows: the database has taken none for %.1f s",
                        now - oldest,
                    )
                self._refusing = True
                return False
            if self._journal.broken and self._batch is None and not self._pending:
                self._replace_broken_journal()
            try:
                self._journal.append(data)
            except OSError:
                logger.exception("could not journal %d audit row(s)", len(wires))
                return False
            self._journaled_bytes += len(data)
            self._last_input = now
            if not self._pending:
                self._pending_since = now
                self._changed.notify()  # the committer may be waiting with no deadline
            self._pending.extend(wires)
        return True

    def _replace_broken_journal(self) -> None:
        """A journal with a partial write and no rows left to commit: start a new one."""
        try:
            new = Journal(self._directory)
        except OSError as error:
            logger.warning("could not start a new audit journal: %s", error)
            return
        old, self._journal = self._journal, new
        old.close(remove=True)  # its mark stays behind, harmless: names never repeat

    def sync(self) -> bool:
        """Wait until every row journaled so far is committed; False if a commit failed."""
        with self._changed:
            target = self._journaled_bytes
            attempts = self._attempts
            self._sync_wanted = True
            self._changed.notify()
            while self._committed_bytes < target:
                if (self._attempts > attempts and self._failing) or not self._committer.is_alive():
                    return False
                self._changed.wait(1.0)
            return True

    def close(self) -> None:
        """Commit what is journaled, stop the committer and release the journal (kept if rows
        in it could not be committed: the next writer commits them)."""
        with self._changed:
            self._stopping = True
            self._changed.notify()
        self._committer.join(_STOP_TIMEOUT)
        if self._committer.is_alive():
            # Still committing: keep the journals locked (the process's exit releases them)
            # so that no recovery replays rows this commit may yet add.
            logger.error("the audit commits did not finish in %.0f s", _STOP_TIMEOUT)
            return
        with self._changed:
            committed = self._committed_bytes == self._journaled_bytes
            self._journal.close(remove=committed)
            if self._batch is not None and self._batch.retiring is not None:
                self._batch.retiring.close(remove=False)
        if committed:
            self._forget(self._journal.name)
        else:
            logger.error(
                "audit rows stay in journal %s: the next writer commits them", self._journal.path
            )
        if self._connection is not None:
            self._connection.close()

    # the committer's thread --------------------------------------------------------------
    def _commit_loop(self) -> None:
        failures_while_stopping = 0
        while True:
            with self._changed:
                while (wait := self._commit_wait()) is None or wait > 0:
                    if self._stopping and self._batch is None and not self._pending:
                        return
                    self._changed.wait(wait)
                batch = self._batch or self._take()
                self._sync_wanted = False
            committed = self._commit(batch)
            with self._changed:
                self._attempts += 1
                if committed:
                    self._batch = None
                    self._committed_bytes = batch.reaches
                    self._failing = self._refusing = False
                else:
                    self._failing = True
                    self._retry_at = time.monotonic() + RETRY_INTERVAL
                self._changed.notify_all()
                if self._stopping and not committed:
                    failures_while_stopping += 1
                    if failures_while_stopping > 1:  # tried twice: leave it to the next writer
                        return
            if committed and batch.retiring is not None:
                batch.retiring.close(remove=True)
                self._forget(batch.mark[0])

    def _take(self) -> _Batch:
        """The pending rows as the next batch; a full (or broken) journal is replaced by a new
        one here, so that every batch lies in one journal."""
        assert self._pending_since is not None  # set with the first pending row
        batch = _Batch(
            wires=self._pending,
            mark=(self._journal.name, self._journal.size),
            reaches=self._journaled_bytes,
            since=self._pending_since,
            retiring=None,
        )
        self._pending, self._pending_since = [], None
        if self._journal.size >= JOURNAL_ROTATE_BYTES or self._journal.broken:
            try:
                batch.retiring, self._journal = self._journal, Journal(self._directory)
            except OSError as error:
                logger.warning("could not start a new audit journal: %s", error)
        self._batch = batch
        return batch

    def _commit_wait(self) -> float | None:
        """Seconds until the next commit is due; None when there is nothing to commit."""
        if self._batch is not None:  # failed before: retry it, and nothing else, first
            due = self._retry_at
        elif not self._pending:
            return None
        elif self._sync_wanted or self._stopping:
            due = self._retry_at
        else:
            assert self._pending_since is not None  # set with the first pending row
            due = min(self._pending_since + COMMIT_INTERVAL, self._last_input + COMMIT_QUIET)
            due = max(due, self._retry_at)
        return due - time.monotonic()

    def _commit(self, batch: _Batch) -> bool:
        try:
            if self._connection is None:
                self._connection = self._engine.connect()
            try:
                append_sqlite(sqlite_driver(self._connection), batch.wires, mark=batch.mark)
            except Exception as error:
                if not unbindable_error(error):
                    raise
                batch.wires = set_aside(self._directory, batch.wires)
                append_sqlite(sqlite_driver(self._connection), batch.wires, mark=batch.mark)
        except Exception:
            if not self._failing:  # once per run of failures
                logger.exception("could not commit %d audit row(s)", len(batch.wires))
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            return False
        if self._failing:
            logger.warning("committing audit rows again (%d were waiting)", len(batch.wires))
        return True

    def _forget(self, journal: str) -> None:
        """Remove a removed journal's mark (a stale one does no harm: names never repeat)."""
        try:
            if self._connection is None:
                self._connection = self._engine.connect()
            with sqlite_driver(self._connection) as driver:
                driver.execute("DELETE FROM audit_journal_marks WHERE journal = ?", (journal,))
        except Exception as error:
            logger.warning("could not remove the mark of journal %s: %s", journal, error)
