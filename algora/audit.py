"""The audit log: one hash-chained row per call and per change, committed before the answer.

:class:`AuditLog` is a group-commit writer. ``await audit.record(event)`` puts the event on a
queue and waits; a dedicated writer thread takes everything queued, inserts it in one
transaction (assigning ids and chain hashes in order), commits, and wakes the waiting calls
with one call into the event loop. While one batch commits the next one gathers, so under
load many calls share one commit, and no call is answered before its row is durable.

The chain: ``hash = sha256(prev_hash + canonical)`` where ``canonical`` is the compact JSON
array (``separators=(",", ":")``, ASCII) of the row's fields in ``_FIELDS`` order, id first,
times as naive UTC ISO 8601 with microseconds; the first row's ``prev_hash`` is 64 zeros.
Ids are assigned by the writer (last id + 1) under the chain lock, so they are gapless:
:func:`verify` reports an edited row (its hash does not match its fields), a deleted row (a
gap in the ids) and reordered rows (a ``prev_hash`` that is not the hash of the row before).
Several gateways on one PostgreSQL serialize their appends with a transaction-scoped
advisory lock; SQLite has one writer.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict as asdataclass_dict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Connection, Engine, Select, Table, select, text
from sqlalchemy.orm import Session, sessionmaker

from algora.db.tables import AuditEventRow
from algora.errors import Unavailable

__all__ = [
    "GENESIS_HASH",
    "AuditEvent",
    "AuditLog",
    "AuthMethod",
    "Decision",
    "Outcome",
    "VerifyReport",
    "chain_hash",
    "query",
    "row_fields",
    "verify",
]

logger = logging.getLogger(__name__)

AuthMethod = Literal["simple", "bearer", "bare", "basic", "none"]
Decision = Literal["allow", "deny"]
Outcome = Literal["allow", "deny", "error"]

GENESIS_HASH = "0" * 64
_MAX_BATCH = 1024
_LINGER_SECONDS = 0.0005
# Any constant shared by every gateway: the key of PostgreSQL's advisory lock on the chain.
_PG_CHAIN_LOCK = 0x616C676F7261  # "algora"
_TABLE = cast(Table, AuditEventRow.__table__)  # a mapped class's table is a Table
_FIELDS = (
    "id",
    "received_at",
    "completed_at",
    "principal",
    "principal_id",
    "key_id",
    "auth_method",
    "peer",
    "forwarded_for",
    "action",
    "resource",
    "version",
    "request_id",
    "parent_request_id",
    "decision",
    "status",
    "error_code",
    "latency_ms",
    "bytes_in",
    "bytes_out",
)


@dataclass(frozen=True)
class AuditEvent:
    """What happened, by whom, from where, and how it ended. Never a payload or a secret."""

    action: str
    received_at: datetime
    completed_at: datetime
    status: int
    decision: Decision
    auth_method: AuthMethod = "none"
    principal: str | None = None
    principal_id: int | None = None
    key_id: str | None = None
    peer: str | None = None
    forwarded_for: str | None = None
    resource: str | None = None
    version: str | None = None
    request_id: str | None = None
    parent_request_id: str | None = None
    error_code: str | None = None
    latency_ms: float = 0.0
    bytes_in: int | None = None
    bytes_out: int | None = None


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    return value


def row_fields(source: AuditEvent | AuditEventRow, row_id: int) -> dict[str, Any]:
    """The hashed fields of a row (everything but the two hashes), in canonical form."""
    return {name: row_id if name == "id" else _canonical(getattr(source, name)) for name in _FIELDS}


def chain_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """sha256 of the previous hash and the row's canonical fields, in ``_FIELDS`` order."""
    return _hash_values(prev_hash, [fields[name] for name in _FIELDS])


def _hash_values(prev_hash: str, values: list[Any]) -> str:
    canonical = json.dumps(values, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256((prev_hash + canonical).encode("ascii")).hexdigest()


_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


_COLUMNS = (*_FIELDS, "prev_hash", "hash")
# Only our own constant column names go into it; the values are bound parameters.
_INSERT = f"INSERT INTO audit_events ({', '.join(_COLUMNS)}) VALUES ({{marks}})"  # noqa: S608


class AuditLog:
    """Group-commit writer of the audit chain. ``start`` in the serving loop, ``stop`` after."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        enabled: bool = True,
        trusted_proxies: Sequence[str] = (),
    ) -> None:
        self._sessions = sessions
        self.enabled = enabled
        self._trusted = [ipaddress.ip_network(cidr, strict=False) for cidr in trusted_proxies]
        self._write_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.last_hash = GENESIS_HASH
        # (last id, last hash), cached between batches; SQLite has one writer (this one),
        # PostgreSQL re-reads it under the chain lock on every batch.
        self._head: tuple[int, str] | None = None
        self._engine: Engine = sessions.kw["bind"]
        self._connection: Connection | None = None

    # origin ------------------------------------------------------------------------------
    def origin(self, peer: str | None, forwarded: str | None) -> tuple[str | None, str | None]:
        """(peer, forwarded-for): the header counts only when the peer is a trusted proxy."""
        if not forwarded or peer is None or not self._trusted:
            return peer, None
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return peer, None
        if any(address in network for network in self._trusted):
            return peer, forwarded.strip()[:255] or None
        return peer, None

    # lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Read the chain head and start the writer thread for the running loop."""
        if not self.enabled or self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self.last_hash = await asyncio.to_thread(self._read_head)
        self._thread = threading.Thread(target=self._write_loop, name="algora-audit", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Commit what is queued, then stop the writer thread (direct writes still work)."""
        thread = self._thread
        if thread is None:
            return
        self._queue.put(None)
        await asyncio.to_thread(thread.join)
        self._thread = self._loop = None
        self._close_connection()

    async def aclose(self) -> None:
        await self.stop()
        self._close_connection()

    # recording ---------------------------------------------------------------------------
    async def record(self, event: AuditEvent) -> None:
        """Return once the event's row is committed; raise Unavailable if it cannot be."""
        if not self.enabled:
            return
        loop = asyncio.get_running_loop()
        if self._thread is None or loop is not self._loop:
            # No writer for this loop (not started, or another loop): commit it alone.
            await asyncio.to_thread(self._commit_or_raise, [event])
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self._queue.put((event, waiter))
        await waiter

    def record_sync(self, event: AuditEvent) -> None:
        """``record`` for code running in a thread; returns once the row is committed."""
        if not self.enabled:
            return
        loop = self._loop
        if loop is not None and self._thread is not None and not _in_loop(loop):
            asyncio.run_coroutine_threadsafe(self.record(event), loop).result()
            return
        self._commit_or_raise([event])

    def _write_loop(self) -> None:
        """The writer thread: take everything queued, commit it as one batch, wake its callers.

        While one batch commits the next one gathers, so under load many calls share a commit;
        the loop is woken once per batch, not once per call.
        """
        loop = self._loop
        assert loop is not None  # set by start() before the thread starts
        stopping = False
        busy = False
        while not stopping:
            first = self._queue.get()
            batch: list[_Item] = []
            if first is None:
                stopping = True
            else:
                batch.append(first)
                if busy and self._queue.empty():
                    # Under load, wait a moment for more calls to share this commit: each
                    # commit costs far more CPU than each row it carries.
                    time.sleep(_LINGER_SECONDS)
            while len(batch) < _MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                else:
                    batch.append(more)
            if not batch:
                continue
            error: Exception | None = None
            try:
                self._commit_or_raise([event for event, _ in batch])
            except Exception as exc:
                error = exc
            busy = len(batch) > 1
            waiters = [waiter for _, waiter in batch]
            try:
                loop.call_soon_threadsafe(_resolve, waiters, error)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return

    # the database side (a thread) --------------------------------------------------------
    def _read_head(self) -> str:
        with self._write_lock, self._sessions() as session:
            found = session.execute(
                select(AuditEventRow.id, AuditEventRow.hash)
                .order_by(AuditEventRow.id.desc())
                .limit(1)
            ).first()
        self._head = (found[0], found[1]) if found is not None else (0, GENESIS_HASH)
        return self._head[1]

    def _commit_or_raise(self, events: list[AuditEvent]) -> None:
        try:
            self._commit(events)
        except Exception as error:
            logger.exception("could not commit %d audit event(s)", len(events))
            raise Unavailable("the audit log cannot be written") from error

    def _commit(self, events: list[AuditEvent]) -> None:
        with self._write_lock:
            if self._connection is None:
                # One connection held for the writer: no pool checkout per batch.
                self._connection = self._engine.connect()
            try:
                self._append(self._connection, events)
            except Exception:
                self._head = None  # read it again next time
                self._connection.close()
                self._connection = None
                raise

    def _append(self, connection: Connection, events: list[AuditEvent]) -> None:
        if connection.dialect.name == "sqlite":
            self._append_sqlite(connection, events)
            return
        with connection.begin():
            # Several gateways may share the chain: serialize appends, then read the head.
            lock = text("SELECT pg_advisory_xact_lock(:key)")
            connection.execute(lock, {"key": _PG_CHAIN_LOCK})
            last_id, prev = _select_head(connection)
            rows, last_id, prev = _chain_rows(events, last_id, prev, sqlite=False)
            connection.exec_driver_sql(
                _INSERT.format(marks=", ".join(["%s"] * len(_COLUMNS))), rows
            )
        self._head = (last_id, prev)
        self.last_hash = prev

    def _append_sqlite(self, connection: Connection, events: list[AuditEvent]) -> None:
        """SQLite has one writer (this one): the head stays in memory between batches, and the
        batch goes straight to the driver, skipping SQLAlchemy's per-statement work."""
        if self._head is None:
            with connection.begin():
                self._head = _select_head(connection)
        last_id, prev = self._head
        rows, last_id, prev = _chain_rows(events, last_id, prev, sqlite=True)
        driver: Any = connection.connection.driver_connection  # a sqlite3.Connection
        try:
            driver.executemany(_INSERT.format(marks=", ".join(["?"] * len(_COLUMNS))), rows)
            driver.commit()
        except BaseException:
            driver.rollback()
            raise
        self._head = (last_id, prev)
        self.last_hash = prev

    def _close_connection(self) -> None:
        with self._write_lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


_Item = tuple[AuditEvent, "asyncio.Future[None]"]


def _select_head(connection: Connection) -> tuple[int, str]:
    found = connection.execute(
        select(AuditEventRow.id, AuditEventRow.hash).order_by(AuditEventRow.id.desc()).limit(1)
    ).first()
    return (found[0], found[1]) if found is not None else (0, GENESIS_HASH)


def _chain_rows(
    events: list[AuditEvent], last_id: int, prev: str, *, sqlite: bool
) -> tuple[list[tuple[Any, ...]], int, str]:
    """The batch's rows with their ids and chain hashes, and the new (last id, last hash)."""
    rows: list[tuple[Any, ...]] = []
    for event in events:
        last_id += 1
        # Hand-unrolled (this runs per call on the hot path): the values in _FIELDS order as
        # the database gives them back, hashed in their canonical form.
        received = event.received_at.replace(tzinfo=None)
        completed = event.completed_at.replace(tzinfo=None)
        rest = (
            event.principal, event.principal_id, event.key_id, event.auth_method,
            event.peer, event.forwarded_for, event.action, event.resource,
            event.version, event.request_id, event.parent_request_id, event.decision,
            event.status, event.error_code, round(float(event.latency_ms), 3),
            event.bytes_in, event.bytes_out,
        )  # fmt: skip
        canonical = [
            last_id,
            received.isoformat(timespec="microseconds"),
            completed.isoformat(timespec="microseconds"),
            *rest,
        ]
        digest = _hash_values(prev, canonical)
        if sqlite:  # times as SQLAlchemy stores them on SQLite (text)
            times: tuple[Any, Any] = (
                received.strftime(_SQLITE_TIME),
                completed.strftime(_SQLITE_TIME),
            )
        else:
            times = (received, completed)
        rows.append((last_id, *times, *rest, prev, digest))
        prev = digest
    return rows, last_id, prev


def _resolve(waiters: list[asyncio.Future[None]], error: Exception | None) -> None:
    for waiter in waiters:
        if waiter.done():
            continue
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


# reading ---------------------------------------------------------------------------------
def query(
    *,
    principal: str | None = None,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    outcome: Outcome | None = None,
    request_id: str | None = None,
    before_id: int | None = None,
    after_id: int | None = None,
    newest_first: bool = True,
) -> Select[AuditEventRow]:
    """The select for a filtered page of events; ``outcome`` error means allowed but failed."""
    statement = select(AuditEventRow)
    if principal is not None:
        statement = statement.where(AuditEventRow.principal == principal)
    if model is not None:
        statement = statement.where(AuditEventRow.resource == model)
    if since is not None:
        statement = statement.where(AuditEventRow.received_at >= since.replace(tzinfo=None))
    if until is not None:
        statement = statement.where(AuditEventRow.received_at < until.replace(tzinfo=None))
    if request_id is not None:
        statement = statement.where(AuditEventRow.request_id == request_id)
    if outcome == "deny":
        statement = statement.where(AuditEventRow.decision == "deny")
    elif outcome == "allow":
        statement = statement.where(
            AuditEventRow.decision == "allow",
            AuditEventRow.status < 400,
            AuditEventRow.error_code.is_(None),
        )
    elif outcome == "error":
        statement = statement.where(
            AuditEventRow.decision == "allow",
            (AuditEventRow.status >= 400) | AuditEventRow.error_code.is_not(None),
        )
    if before_id is not None:
        statement = statement.where(AuditEventRow.id < before_id)
    if after_id is not None:
        statement = statement.where(AuditEventRow.id > after_id)
    order = AuditEventRow.id.desc() if newest_first else AuditEventRow.id.asc()
    return statement.order_by(order)


def as_dict(row: AuditEventRow) -> dict[str, Any]:
    """A row as JSON-ready values (datetimes in ISO 8601, UTC)."""
    out = {name: _canonical(getattr(row, name)) for name in _FIELDS}
    out["prev_hash"] = row.prev_hash
    out["hash"] = row.hash
    return out


def iter_rows(sessions: sessionmaker[Session], chunk: int = 1000) -> Iterator[AuditEventRow]:
    """Every row in chain order, read in chunks of ``chunk`` (keyset pagination)."""
    after = 0
    while True:
        with sessions() as session:
            rows = session.scalars(query(after_id=after, newest_first=False).limit(chunk)).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].id


@dataclass(frozen=True)
class VerifyReport:
    """The chain's state: ``ok``, or the first bad row and why."""

    ok: bool
    rows: int
    last_id: int | None
    last_hash: str
    first_bad_id: int | None = None
    problem: Literal["edited", "deleted", "reordered", "truncated"] | None = None
    message: str = ""

    @property
    def anchor(self) -> str | None:
        """``ID:HASH`` of the last intact row: keep it elsewhere and pass it to a later
        :func:`verify`, which then also detects rows deleted from the end of the chain."""
        return f"{self.last_id}:{self.last_hash}" if self.last_id else None


def report_dict(report: VerifyReport) -> dict[str, Any]:
    """The report as JSON-ready values, its anchor included."""
    return {**asdataclass_dict(report), "anchor": report.anchor if report.ok else None}


def parse_anchor(text: str) -> tuple[int, str]:
    """``ID:HASH`` (what an earlier verify reported) as (id, hash), or ValueError."""
    row_id, sep, digest = text.strip().partition(":")
    if not sep or not row_id.isdigit() or int(row_id) < 1 or len(digest) != 64:
        raise ValueError("an anchor is ID:HASH as an earlier verify printed it, e.g. 42:9f3c...")
    if any(c not in "0123456789abcdef" for c in digest):
        raise ValueError("an anchor's hash is 64 lowercase hex digits")
    return int(row_id), digest


def verify(sessions: sessionmaker[Session], anchor: tuple[int, str] | None = None) -> VerifyReport:
    """Walk the chain from the first row and stop at the first row that breaks it.

    The chain alone cannot show that its newest rows were deleted; ``anchor`` (the
    ``(id, hash)`` of a row seen earlier, kept outside the database) can: that row must still
    be there with that hash."""
    prev_hash, prev_id, count = GENESIS_HASH, 0, 0
    for row in iter_rows(sessions):
        if anchor is not None and prev_id == anchor[0] and prev_hash != anchor[1]:
            return _anchor_mismatch(count, prev_id, prev_hash, anchor)
        if row.id != prev_id + 1:
            missing = f"{prev_id + 1}" if row.id == prev_id + 2 else f"{prev_id + 1}-{row.id - 1}"
            if row.id <= prev_id:
                return _broken(count, prev_id, prev_hash, row.id, "reordered", "ids out of order")
            return _broken(
                count, prev_id, prev_hash, row.id, "deleted",
                f"row(s) {missing} are missing before row {row.id}",
            )  # fmt: skip
        if row.prev_hash != prev_hash:
            return _broken(
                count, prev_id, prev_hash, row.id, "reordered",
                f"row {row.id} does not follow row {prev_id}: its prev_hash is not that row's "
                "hash (rows were reordered, or a row before it was deleted or rewritten)",
            )  # fmt: skip
        if chain_hash(row.prev_hash, row_fields(row, row.id)) != row.hash:
            return _broken(
                count, prev_id, prev_hash, row.id, "edited",
                f"row {row.id} was edited: its hash does not match its fields",
            )  # fmt: skip
        prev_hash, prev_id, count = row.hash, row.id, count + 1
    if anchor is not None and prev_id < anchor[0]:
        return _broken(
            count, prev_id, prev_hash, prev_id + 1, "truncated",
            f"the chain ends at row {prev_id} but row {anchor[0]} was seen before: "
            f"row(s) {prev_id + 1}-{anchor[0]} or later were deleted from its end",
        )  # fmt: skip
    if anchor is not None and prev_id == anchor[0] and prev_hash != anchor[1]:
        return _anchor_mismatch(count, prev_id, prev_hash, anchor)
    return VerifyReport(
        ok=True,
        rows=count,
        last_id=prev_id or None,
        last_hash=prev_hash,
        message=f"the audit chain is intact: {count} row(s)",
    )


def _anchor_mismatch(
    count: int, prev_id: int, prev_hash: str, anchor: tuple[int, str]
) -> VerifyReport:
    # The chain up to the anchor is self-consistent but differs from what was seen: the rows
    # were rewritten and rehashed from some point on.
    del count, prev_id, prev_hash  # which rows before it were rewritten is unknowable
    return _broken(
        0, 0, GENESIS_HASH, anchor[0], "edited",
        f"row {anchor[0]} no longer has the hash it had when the anchor was taken: "
        "the chain was rewritten up to it",
    )  # fmt: skip


def _broken(
    count: int,
    prev_id: int,
    prev_hash: str,
    bad_id: int,
    problem: Literal["edited", "deleted", "reordered", "truncated"],
    message: str,
) -> VerifyReport:
    return VerifyReport(
        ok=False,
        rows=count,
        last_id=prev_id or None,
        last_hash=prev_hash,
        first_bad_id=bad_id,
        problem=problem,
        message=message,
    )
