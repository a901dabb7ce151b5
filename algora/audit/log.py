"""The audit log: one hash-chained row per call and per change, committed before the answer.

:class:`AuditLog` is the gateway's side. ``await audit.record(event)`` returns once the event's
row is committed. While the gateway serves, rows go to an audit writer process
(:mod:`algora.audit.writer`) that hashes and commits them in groups: under load many calls
share one commit, the event loop pays only for encoding its rows, and no call is answered
before its row is durable. Outside the serving loop (another loop, another thread, the writer
not started) a row is committed directly.

The chain (:mod:`algora.audit.chain`): ``hash = sha256(prev_hash + canonical)`` where
``canonical`` is the compact JSON array of the row's fields, id first; the first row's
``prev_hash`` is 64 zeros. Ids are assigned under the database's write lock (last id + 1), so
they are gapless and any number of writers extend one chain: :func:`verify` reports an edited
row (its hash does not match its fields), a deleted row (a gap in the ids) and reordered rows
(a ``prev_hash`` that is not the hash of the row before).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict as asdataclass_dict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, Select, select
from sqlalchemy.orm import Session, sessionmaker

from algora.audit.anchors import parse_anchor
from algora.audit.chain import (
    FIELDS,
    GENESIS_HASH,
    append,
    canonical_value,
    chain_hash,
    epoch_micros,
    row_fields,
)
from algora.audit.inprocess import ThreadWriter
from algora.audit.journal import journal_directory
from algora.audit.writer import WriterGone, WriterProcess
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
    "parse_anchor",
    "query",
    "row_fields",
    "verify",
]

logger = logging.getLogger(__name__)

AuthMethod = Literal["simple", "bearer", "bare", "basic", "none"]
Decision = Literal["allow", "deny"]
Outcome = Literal["allow", "deny", "error"]

# After a writer stops, calls are refused (503) for this long before another one is started:
# a writer that cannot start must not be restarted once per call.
_RESTART_INTERVAL = 1.0


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


def wire_row(
    *,
    action: str,
    received_us: int,
    completed_us: int,
    status: int,
    decision: Decision,
    auth_method: AuthMethod,
    principal: str | None,
    principal_id: int | None,
    key_id: str | None,
    peer: str | None,
    forwarded_for: str | None,
    resource: str | None,
    version: str | None,
    request_id: str | None,
    parent_request_id: str | None,
    error_code: str | None,
    latency_ms: float,
    bytes_in: int | None,
    bytes_out: int | None,
) -> list[Any]:
    """A row's wire values (times in microseconds since the epoch) without an AuditEvent: the
    audit middleware builds one per call."""
    return [
        received_us, completed_us, principal, principal_id, key_id, auth_method, peer,
        forwarded_for, action, resource, version, request_id, parent_request_id, decision,
        status, error_code, round(latency_ms, 3), bytes_in, bytes_out,
    ]  # fmt: skip


def to_wire(event: AuditEvent) -> list[Any]:
    """The event's row values after ``id``, in the chain's field order (times as microseconds
    since the epoch: the writer puts them in canonical form, off the gateway's loop)."""
    return wire_row(
        action=event.action,
        received_us=epoch_micros(event.received_at),
        completed_us=epoch_micros(event.completed_at),
        status=event.status,
        decision=event.decision,
        auth_method=event.auth_method,
        principal=event.principal,
        principal_id=event.principal_id,
        key_id=event.key_id,
        peer=event.peer,
        forwarded_for=event.forwarded_for,
        resource=event.resource,
        version=event.version,
        request_id=event.request_id,
        parent_request_id=event.parent_request_id,
        error_code=event.error_code,
        latency_ms=float(event.latency_ms),
        bytes_in=event.bytes_in,
        bytes_out=event.bytes_out,
    )


class AuditLog:
    """The gateway's audit log. ``start`` it in the serving loop, ``stop`` it after."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        enabled: bool = True,
        max_commit_lag: float = 5.0,
        trusted_proxies: Sequence[str] = (),
        in_process: bool = False,
    ) -> None:
        self._sessions = sessions
        self.enabled = enabled
        self._max_commit_lag = max_commit_lag
        self._in_process = in_process
        self._trusted = [ipaddress.ip_network(cidr, strict=False) for cidr in trusted_proxies]
        self._engine: Engine = sessions.kw["bind"]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: WriterProcess | ThreadWriter | None = None
        self._restart_lock: asyncio.Lock | None = None
        self._writer_started = 0.0
        self._direct_lock = threading.Lock()
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
        """Start the audit writer for the running loop (a database in memory keeps none)."""
        if not self.enabled or self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._restart_lock = asyncio.Lock()
        url = self._engine.url
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            return  # in memory: another process would see another database
        try:
            await self._start_writer()
        except WriterGone as error:
            self._loop = self._restart_lock = None
            raise Unavailable("the audit log cannot be written") from error

    async def _start_writer(self) -> None:
        self._writer_started = time.monotonic()
        url = self._engine.url.render_as_string(hide_password=False)
        directory = journal_directory(self._engine.url)
        if self._in_process and directory is not None:
            self._writer = await ThreadWriter.start(
                url, directory, max_commit_lag=self._max_commit_lag
            )
            return
        self._writer = await WriterProcess.start(url, max_commit_lag=self._max_commit_lag)

    async def stop(self) -> None:
        """Commit what is queued and stop the writer (direct writes still work)."""
        writer, self._writer = self._writer, None
        self._loop = self._restart_lock = None
        if writer is not None:
            await writer.close()

    async def aclose(self) -> None:
        await self.stop()
        with self._direct_lock:
            self._close_connection()

    def commit_lag(self) -> float | None:
        """Seconds the oldest journaled row has waited for the database, where this process
        journals (the in-process writer); None where a writer process does."""
        writer = self._writer
        return writer.lag() if isinstance(writer, ThreadWriter) and writer.running else None

    # recording ---------------------------------------------------------------------------
    async def record(self, event: AuditEvent) -> None:
        """Return once the event's row is committed; raise Unavailable if it cannot be."""
        if self.enabled:
            await self.record_wire(to_wire(event))

    async def record_wire(self, wire: list[Any]) -> None:
        """:meth:`record` for a row already in wire form (see :func:`wire_row`)."""
        if not self.enabled:
            return
        if (
            self._loop is None
            or self._writer is None
            or asyncio.get_running_loop() is not self._loop
        ):
            # No writer for this loop: commit it alone, off the loop.
            await asyncio.to_thread(self._commit_direct, [wire])
            return
        writer = self._writer if self._writer.running else await self._restarted_writer()
        try:
            await writer.submit(wire)
        except WriterGone as error:
            raise Unavailable("the audit log cannot be written") from error

    async def sync(self) -> None:
        """Return once every row recorded so far is in the database (the writer journals rows
        first: see :mod:`algora.audit.writer`). Readers of the log call it before they read; a
        writer that stopped is replaced first, since its successor commits its journal. A sync
        that fails is logged, and the reader reads what the database has."""
        writer = self._writer
        if writer is None or asyncio.get_running_loop() is not self._loop:
            return
        try:
            if not writer.running:
                writer = await self._restarted_writer()
            await writer.sync()
        except (WriterGone, Unavailable):
            logger.warning("the audit writer could not commit its journaled rows before a read")

    async def _restarted_writer(self) -> WriterProcess | ThreadWriter:
        assert self._restart_lock is not None  # set with _loop by start()
        async with self._restart_lock:
            writer = self._writer
            if writer is not None and writer.running:
                return writer
            if time.monotonic() - self._writer_started < _RESTART_INTERVAL:
                raise Unavailable("the audit log cannot be written: its writer is restarting")
            logger.error("the audit writer stopped: starting another")
            try:
                await self._start_writer()
            except WriterGone as error:
                raise Unavailable("the audit log cannot be written") from error
            assert self._writer is not None
            return self._writer

    def record_sync(self, event: AuditEvent) -> None:
        """``record`` for code running in a thread; returns once the row is committed."""
        if not self.enabled:
            return
        loop = self._loop
        if loop is not None and self._writer is not None and not _in_loop(loop):
            asyncio.run_coroutine_threadsafe(self.record(event), loop).result()
            return
        self._commit_direct([to_wire(event)])

    def _commit_direct(self, wires: list[list[Any]]) -> None:
        with self._direct_lock:
            try:
                if self._connection is None:
                    self._connection = self._engine.connect()
                append(self._connection, wires)
            except Exception as error:
                logger.exception("could not commit %d audit event(s)", len(wires))
                self._close_connection()
                raise Unavailable("the audit log cannot be written") from error

    def _close_connection(self) -> None:
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
    *, before_id: int | None = None, after_id: int | None = None, newest_first: bool = True
) -> Select[AuditEventRow]:
    """The select for a page of events (``AuditFilter.select`` in :mod:`algora.audit.queries`
    narrows it to the events asked for)."""
    statement = select(AuditEventRow)
    if before_id is not None:
        statement = statement.where(AuditEventRow.id < before_id)
    if after_id is not None:
        statement = statement.where(AuditEventRow.id > after_id)
    order = AuditEventRow.id.desc() if newest_first else AuditEventRow.id.asc()
    return statement.order_by(order)


def as_dict(row: AuditEventRow) -> dict[str, Any]:
    """A row as JSON-ready values (datetimes in ISO 8601, UTC)."""
    out = {name: canonical_value(getattr(row, name)) for name in FIELDS}
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
