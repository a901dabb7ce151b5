"""The audit log: one hash-chained row per call and per change, committed before the answer.

:class:`AuditLog` is a group-commit writer. ``await audit.record(event)`` puts the event on a
queue and waits; one background task drains the queue, hands the whole batch to a dedicated
thread that inserts it in one transaction (assigning ids and chain hashes in order) and
commits, then resolves every waiter. While one batch commits the next one gathers, so under
load many calls share one commit, and no call is answered before its row is durable.

The chain: ``hash = sha256(prev_hash + canonical JSON of the row's fields, id included)``;
the first row's ``prev_hash`` is 64 zeros. Ids are assigned by the writer (last id + 1) under
the chain lock, so they are gapless: :func:`verify` reports an edited row (its hash does not
match its fields), a deleted row (a gap in the ids) and reordered rows (a ``prev_hash`` that
is not the hash of the row before). Several gateways on one PostgreSQL serialize their
appends with a transaction-scoped advisory lock; SQLite has one writer.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
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

AuthMethod = Literal["simple", "bearer", "bare", "none"]
Decision = Literal["allow", "deny"]
Outcome = Literal["allow", "deny", "error"]

GENESIS_HASH = "0" * 64
_MAX_BATCH = 1024
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
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256((prev_hash + canonical).encode("ascii")).hexdigest()


_COLUMNS = (*_FIELDS, "prev_hash", "hash")
# Only our own constant column names go into it; the values are bound parameters.
_INSERT = f"INSERT INTO audit_events ({', '.join(_COLUMNS)}) VALUES ({{marks}})"  # noqa: S608


def _driver_value(value: Any, sqlite: bool) -> Any:
    """A value as the driver takes it; on SQLite, times as SQLAlchemy stores them (text)."""
    if sqlite and isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def _row(event: AuditEvent, row_id: int) -> dict[str, Any]:
    """The row's column values, exactly as the database gives them back (naive UTC times,
    latency rounded to microseconds), so that its hash verifies after a reload."""
    row = {name: getattr(event, name) for name in _FIELDS[1:]}
    row["id"] = row_id
    row["received_at"] = event.received_at.replace(tzinfo=None)
    row["completed_at"] = event.completed_at.replace(tzinfo=None)
    row["latency_ms"] = round(float(event.latency_ms), 3)
    return row


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
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[AuditEvent, asyncio.Future[None]] | None] | None = None
        self._task: asyncio.Task[None] | None = None
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
        """Read the chain head and start the writer in the running loop."""
        if not self.enabled or self._task is not None:
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="algora-audit")
        self._loop = asyncio.get_running_loop()
        self.last_hash = await self._loop.run_in_executor(self._executor, self._read_head)
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._drain(self._queue), name="algora-audit-writer")

    async def stop(self) -> None:
        """Commit what is queued, then stop the writer task (direct writes still work)."""
        task, queue = self._task, self._queue
        if task is None or queue is None:
            return
        queue.put_nowait(None)
        await task
        self._task = self._queue = self._loop = None
        self._close_connection()

    async def aclose(self) -> None:
        await self.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._close_connection()

    # recording ---------------------------------------------------------------------------
    async def record(self, event: AuditEvent) -> None:
        """Return once the event's row is committed; raise Unavailable if it cannot be."""
        if not self.enabled:
            return
        queue = self._queue
        loop = asyncio.get_running_loop()
        if queue is None or loop is not self._loop:
            # No writer in this loop (not started, or another loop): commit it alone.
            await asyncio.to_thread(self._commit_or_raise, [event])
            return
        waiter: asyncio.Future[None] = loop.create_future()
        queue.put_nowait((event, waiter))
        await waiter

    def record_sync(self, event: AuditEvent) -> None:
        """``record`` for code running in a thread; returns once the row is committed."""
        if not self.enabled:
            return
        loop = self._loop
        if loop is not None and self._task is not None and not _in_loop(loop):
            asyncio.run_coroutine_threadsafe(self.record(event), loop).result()
            return
        self._commit_or_raise([event])

    async def _drain(
        self, queue: asyncio.Queue[tuple[AuditEvent, asyncio.Future[None]] | None]
    ) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            item = await queue.get()
            batch: list[tuple[AuditEvent, asyncio.Future[None]]] = []
            if item is None:
                stopping = True
            else:
                batch.append(item)
            while len(batch) < _MAX_BATCH and not queue.empty():
                more = queue.get_nowait()
                if more is None:
                    stopping = True
                else:
                    batch.append(more)
            if not batch:
                continue
            try:
                await loop.run_in_executor(
                    self._executor, self._commit_or_raise, [event for event, _ in batch]
                )
            except Exception as error:
                for _, waiter in batch:
                    if not waiter.done():
                        waiter.set_exception(error)
            else:
                for _, waiter in batch:
                    if not waiter.done():
                        waiter.set_result(None)

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
        with connection.begin():
            if connection.dialect.name == "postgresql":
                # Several gateways may share the chain: serialize appends, then read the head.
                lock = text("SELECT pg_advisory_xact_lock(:key)")
                connection.execute(lock, {"key": _PG_CHAIN_LOCK})
                self._head = None
            if self._head is None:
                found = connection.execute(
                    select(AuditEventRow.id, AuditEventRow.hash)
                    .order_by(AuditEventRow.id.desc())
                    .limit(1)
                ).first()
                self._head = (found[0], found[1]) if found is not None else (0, GENESIS_HASH)
            last_id, prev = self._head
            rows: list[dict[str, Any]] = []
            for event in events:
                last_id += 1
                row = _row(event, last_id)
                digest = chain_hash(prev, {k: _canonical(v) for k, v in row.items()})
                row["prev_hash"], row["hash"] = prev, digest
                rows.append(row)
                prev = digest
            # The driver's executemany with plain tuples: this runs once per batch on the hot
            # path, and SQLAlchemy's per-row statement and type handling would double its cost.
            sqlite = connection.dialect.name == "sqlite"
            marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
            connection.exec_driver_sql(
                _INSERT.format(marks=", ".join([marker] * len(_COLUMNS))),
                [tuple(_driver_value(row[c], sqlite) for c in _COLUMNS) for row in rows],
            )
        self._head = (last_id, prev)
        self.last_hash = prev

    def _close_connection(self) -> None:
        with self._write_lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


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
    problem: Literal["edited", "deleted", "reordered"] | None = None
    message: str = ""


def verify(sessions: sessionmaker[Session]) -> VerifyReport:
    """Walk the chain from the first row and stop at the first row that breaks it."""
    prev_hash, prev_id, count = GENESIS_HASH, 0, 0
    for row in iter_rows(sessions):
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
    return VerifyReport(
        ok=True,
        rows=count,
        last_id=prev_id or None,
        last_hash=prev_hash,
        message=f"the audit chain is intact: {count} row(s)",
    )


def _broken(
    count: int,
    prev_id: int,
    prev_hash: str,
    bad_id: int,
    problem: Literal["edited", "deleted", "reordered"],
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
