"""The audit writer's journal in the gateway's own process (SQLite), for the lowest latency.

:class:`~algora.audit.writer.WriterProcess` sends each batch of rows to a process of its own,
which journals them and answers: two crossings between processes before a call may be answered,
which on one core is most of a warm call's latency. :class:`ThreadWriter` keeps the same
promise (a row is in the journal, as durable as a commit to SQLite's WAL, before its call is
answered) with one ``write`` in the gateway: the rows queued in one turn of the event loop are
journaled together and answered at once, and the :class:`~algora.audit.sinks.JournalSink`'s
own thread commits the journal to the database in groups, as it does in the writer process.

PostgreSQL keeps the writer process: there a row is durable only once committed, and a commit
must not block the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from algora.audit.chain import Wire, check_wire
from algora.audit.sinks import JournalSink
from algora.audit.writer import WriterGone

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = ["ThreadWriter"]

logger = logging.getLogger(__name__)


class ThreadWriter:
    """:class:`~algora.audit.writer.WriterProcess`'s interface over an in-process journal."""

    def __init__(self, sink: JournalSink, engine: Engine, loop: asyncio.AbstractEventLoop) -> None:
        self._sink = sink
        self._engine = engine
        self._loop = loop
        self._lines: list[bytes] = []
        self._wires: list[Wire] = []
        self._waiting: list[asyncio.Future[None]] = []
        self._flush_handle: asyncio.Handle | None = None
        self._open = True

    @classmethod
    async def start(
        cls, database_url: str, directory: Path, *, max_commit_lag: float = 5.0
    ) -> ThreadWriter:
        from algora.db.engine import create_registry_engine

        engine = create_registry_engine(database_url)
        try:
            sink = await asyncio.to_thread(
                JournalSink, engine, directory, max_commit_lag=max_commit_lag
            )
        except Exception as error:
            engine.dispose()
            raise WriterGone(f"the audit journal cannot be written: {error}") from error
        return cls(sink, engine, asyncio.get_running_loop())

    @property
    def running(self) -> bool:
        return self._open

    def lag(self) -> float:
        """Seconds the oldest row journaled but not yet in the database has waited."""
        return self._sink.lag()

    def submit(self, wire: list[object]) -> asyncio.Future[None]:
        """Queue a row; the future resolves once it is journaled (WriterGone if it is not)."""
        if not self._open:
            raise WriterGone("the audit writer has stopped")
        waiter: asyncio.Future[None] = self._loop.create_future()
        try:
            check_wire(wire)
            line = json.dumps(wire, separators=(",", ":"), allow_nan=False).encode("ascii")
        except (ValueError, TypeError) as error:
            logger.error("refusing an audit row the database would not take: %s", error)
            waiter.set_exception(WriterGone("the audit row cannot be written"))
            return waiter
        self._lines.append(line)
        self._wires.append(wire)
        self._waiting.append(waiter)
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)
        return waiter

    def _flush(self) -> None:
        """Journal the rows queued in this turn of the loop with one write, and answer them."""
        self._flush_handle = None
        lines, wires, waiting = self._lines, self._wires, self._waiting
        self._lines, self._wires, self._waiting = [], [], []
        if not waiting:
            return
        journaled = self._sink.put(lines, wires)
        for waiter in waiting:
            if waiter.done():
                continue
            if journaled:
                waiter.set_result(None)
            else:
                waiter.set_exception(WriterGone("the audit journal refused the rows"))

    async def sync(self) -> None:
        """Resolves once every row journaled so far is in the database."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush()
        if not await asyncio.to_thread(self._sink.sync):
            raise WriterGone("the audit journal's rows could not be committed")

    async def close(self) -> None:
        """Journal what is queued, commit the journal and release it."""
        if not self._open:
            return
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush()
        self._open = False
        await asyncio.to_thread(self._sink.close)
        self._engine.dispose()
