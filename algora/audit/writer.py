"""The audit writer: a process beside the gateway that makes its audit rows durable.

The gateway's event loop only encodes each row and waits for its acknowledgement; the chain
hashes, the journal and the database commits happen here, on another core. (A writer thread
inside the gateway contended with the event loop for Python's GIL and cost it about a quarter
of its throughput.)

The protocol, one line at a time on the writer's stdin and stdout:

- gateway to writer, first: the writer's configuration, a JSON object
  (:class:`WriterConfig`: the database URL and the commit lag limit). It travels on stdin,
  not in argv or the environment, so no other local user's ``ps`` and no child process sees
  the database's credentials, and the gateway's Settings stay the one reader of the environment;
- gateway to writer, then: a row, as its wire values (:data:`algora.audit.chain.Wire`) in a JSON
  array; or ``sync``: commit everything acknowledged so far to the database;
- writer to gateway: ``ready`` once it can write, then, in order, ``ok N`` when the next N
  lines are done (rows durable, or the sync committed) or ``error N`` when they are not (the
  reason goes to stderr, which the writer shares with the gateway).

On SQLite a row is durable once it is in the writer's journal (:mod:`algora.audit.journal`),
and a thread of the writer commits the journaled rows to the database when the gateway pauses
for a few milliseconds, at least every 50 ms under load, and at every ``sync`` (the audit API
syncs before it reads); see :mod:`algora.audit.sinks`. On PostgreSQL, whose commits outlive
the gateway's machine, each batch is committed before it is acknowledged. Everything that
arrives while the writer is busy is the next batch, so under load many rows share one write.

The writer exits when its stdin closes, after committing all it read. It ignores SIGINT and
SIGTERM: a Ctrl-C, or a signal to the gateway's process group, must not end it before the
gateway has drained it; if the gateway dies, its stdin closes anyway.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from algora.audit.chain import Wire, check_wire

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = [
    "SYNC",
    "WriterConfig",
    "WriterGone",
    "WriterProcess",
    "main",
]

logger = logging.getLogger(__name__)

# Below malloc's mmap threshold: a larger read buffer costs an mmap and a munmap per batch.
_READ_SIZE = 1 << 16
# Under load, rows go to the writer at most this often (at once when it has been idle longer):
# fewer, larger commits cost the machine far less than one per call, for at most this much
# more latency (benchmarks/audit_cost.py measured 0.5 ms and 2 ms as worse than 1 ms).
_MIN_FLUSH_INTERVAL = 0.001
SYNC = b"sync"
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 30.0


@dataclass(frozen=True)
class WriterConfig:
    """What the writer needs to know, sent as the first line of its stdin."""

    database_url: str
    max_commit_lag: float = 5.0

    def line(self) -> bytes:
        fields = {"database_url": self.database_url, "max_commit_lag": self.max_commit_lag}
        return json.dumps(fields).encode() + b"\n"

    @classmethod
    def parse(cls, line: bytes) -> WriterConfig:
        """The configuration in ``line``; ValueError saying what is wrong."""
        try:
            fields = json.loads(line)
        except ValueError:
            fields = None
        if not isinstance(fields, dict) or not isinstance(fields.get("database_url"), str):
            raise ValueError("the first line on stdin is not the writer's configuration")
        lag = fields.get("max_commit_lag", 5.0)
        if isinstance(lag, bool) or not isinstance(lag, int | float) or not lag > 0:
            raise ValueError("max_commit_lag is not a positive number of seconds")
        return cls(fields["database_url"], float(lag))


class WriterGone(Exception):
    """The writer process is not running (it never started, or it stopped)."""


# the gateway's end ---------------------------------------------------------------------------
class WriterProcess:
    """A running writer, driven from one event loop: :meth:`submit` rows, await their commit."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._loop = asyncio.get_running_loop()
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._lines: list[str] = []
        self._flush_handle: asyncio.Handle | None = None
        self._in_flight = 0  # rows sent and not yet acknowledged
        self._last_flush = 0.0
        self._open = True
        self._reader = self._loop.create_task(self._read_acks(), name="algora-audit-acks")

    @classmethod
    async def start(cls, database_url: str, *, max_commit_lag: float = 5.0) -> WriterProcess:
        """Start a writer on the database; raise WriterGone if it cannot write."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "algora.audit.writer",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None and process.stdin is not None  # PIPE above
        process.stdin.write(WriterConfig(database_url, float(max_commit_lag)).line())
        try:
            line = await asyncio.wait_for(process.stdout.readline(), _START_TIMEOUT)
        except TimeoutError:
            line = b""
        if line.strip() != b"ready":
            await _end(process)
            raise WriterGone("the audit writer did not start (its reason is in the server log)")
        return cls(process)

    @property
    def running(self) -> bool:
        return self._open

    def submit(self, wire: list[object]) -> asyncio.Future[None]:
        """Queue a row; the future resolves once it is durable (WriterGone if it is not)."""
        return self._queue(_encode(wire))

    def sync(self) -> asyncio.Future[None]:
        """Resolves once every row acknowledged before it is in the database."""
        return self._queue(SYNC.decode("ascii"))

    def _queue(self, line: str) -> asyncio.Future[None]:
        if not self._open:
            raise WriterGone("the audit writer has stopped")
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiting.append(waiter)
        self._lines.append(line)
        self._schedule_flush()
        return waiter

    def _schedule_flush(self) -> None:
        if self._flush_handle is not None or self._in_flight:
            return
        delay = self._last_flush + _MIN_FLUSH_INTERVAL - self._loop.time()
        if delay <= 0:  # idle: at once (rows queued in this turn of the loop go together)
            self._flush_handle = self._loop.call_soon(self._flush)
        else:
            self._flush_handle = self._loop.call_later(delay, self._flush)

    def _flush(self) -> None:
        """Send the queued rows, unless a batch is being committed: one batch at a time, so
        rows that arrive during a commit share the next one (one write, one wakeup, one
        acknowledgement per batch instead of per row)."""
        self._flush_handle = None
        if not self._lines or self._in_flight:
            return
        self._in_flight = len(self._lines)
        self._last_flush = self._loop.time()
        data = ("\n".join(self._lines) + "\n").encode("ascii")
        self._lines.clear()
        stdin = self._process.stdin
        try:
            if stdin is None or stdin.is_closing():
                raise ConnectionResetError("the audit writer's stdin is closed")
            stdin.write(data)
        except (ConnectionError, RuntimeError) as error:
            logger.error("could not send rows to the audit writer: %s", error)
            self._stop_taking()

    async def _read_acks(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None  # PIPE in start()
        try:
            while line := await stdout.readline():
                self._acknowledge(line)
        except (ValueError, IndexError) as error:  # not our protocol: stop trusting it
            logger.error("the audit writer answered out of protocol: %s", error)
            self._process.kill()
        finally:
            self._stop_taking()
            self._fail_waiting(WriterGone("the audit writer stopped before committing the row"))

    def _acknowledge(self, line: bytes) -> None:
        word, count_text = line.decode("ascii").split()
        count = int(count_text)
        if word not in ("ok", "error") or not 0 < count <= len(self._waiting):
            raise ValueError(f"unexpected line {line[:80]!r}")
        error = None if word == "ok" else WriterGone("the audit writer could not commit the row")
        for _ in range(count):
            _settle(self._waiting.popleft(), error)
        self._in_flight = max(0, self._in_flight - count)
        if self._lines:
            self._schedule_flush()

    def _stop_taking(self) -> None:
        self._open = False
        self._lines.clear()
        stdin = self._process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()

    def _fail_waiting(self, error: Exception) -> None:
        while self._waiting:
            _settle(self._waiting.popleft(), error)

    async def close(self) -> None:
        """Send what is queued, let the writer commit it, and wait for the process to end."""
        self._in_flight = 0
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush()
        self._stop_taking()
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), _STOP_TIMEOUT)
        except TimeoutError:
            logger.error("the audit writer did not finish in %.0f s: killing it", _STOP_TIMEOUT)
        await _end(self._process)
        self._reader.cancel()
        self._fail_waiting(WriterGone("the audit writer was stopped"))


_encode = json.JSONEncoder(separators=(",", ":")).encode


def _settle(waiter: asyncio.Future[None], error: Exception | None) -> None:
    if waiter.done():  # the call was cancelled while it waited
        return
    if error is None:
        waiter.set_result(None)
    else:
        waiter.set_exception(error)


async def _end(process: asyncio.subprocess.Process) -> None:
    if process.stdin is not None and not process.stdin.is_closing():
        process.stdin.close()
    try:
        await asyncio.wait_for(process.wait(), _STOP_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()


# the writer's end ----------------------------------------------------------------------------
def _first_line() -> tuple[bytes, bytes]:
    """The first line on stdin, and what was read after it (read unbuffered, like the rows)."""
    data = b""
    while b"\n" not in data:
        chunk = os.read(0, _READ_SIZE)
        if not chunk:
            return data, b""
        data += chunk
    first, _newline, rest = data.partition(b"\n")
    return first, rest


def main() -> int:
    """Run the writer on stdin/stdout until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="algora audit writer: %(message)s"
    )
    first, pending = _first_line()
    try:
        config = WriterConfig.parse(first)
    except ValueError as error:
        logger.error("%s: start the writer through the gateway", error)
        return 2
    # Imported here: the gateway imports this module for WriterProcess alone.
    from algora.db.engine import create_registry_engine

    max_commit_lag = config.max_commit_lag
    engine = create_registry_engine(config.database_url)
    out = sys.stdout.buffer
    try:
        writer = _Writer(engine, out, max_commit_lag=max_commit_lag)
    except Exception:
        logger.exception("cannot write the audit chain")
        engine.dispose()
        return 1
    # The committer thread holds the GIL while it hashes a group of rows: hand it back soon
    # when a batch arrives to be answered.
    sys.setswitchinterval(0.001)
    _say(out, "ready")
    while chunk := os.read(0, _READ_SIZE):
        data = pending + chunk
        cut = data.rfind(b"\n") + 1
        pending = data[cut:]
        if cut:
            writer.take(data[:cut].splitlines())
    if pending:
        logger.error("stdin closed in the middle of a row: %d byte(s) dropped", len(pending))
    writer.finish()
    engine.dispose()
    return 0


class _Writer:
    """Takes the gateway's lines, has a sink make their rows durable, and answers in order."""

    def __init__(self, engine: Engine, out: IO[bytes], *, max_commit_lag: float = 5.0) -> None:
        from algora.audit.journal import journal_directory
        from algora.audit.sinks import DirectSink, JournalSink

        self._out = out
        self._answers: list[bytes] = []
        directory = journal_directory(engine.url)
        self._sink: DirectSink | JournalSink = (
            DirectSink(engine)  # PostgreSQL: commits outlive this machine; a journal would not
            if directory is None
            else JournalSink(engine, directory, max_commit_lag=max_commit_lag)
        )

    def take(self, lines: list[bytes]) -> None:
        """Act on complete lines: runs of rows go to the sink together."""
        run: list[bytes] = []
        wires: list[Wire] = []
        for line in lines:
            if line == SYNC:
                self._rows(run, wires)
                run, wires = [], []
                self._flush_answers()  # answer what is durable before waiting on a commit
                self._answer(b"ok 1" if self._sink.sync() else b"error 1")
                continue
            try:
                wire = json.loads(line)
                check_wire(wire)
            except (ValueError, RecursionError) as error:  # not from our gateway: refuse it alone
                logger.error("refusing an audit row the database would not take: %s", error)
                self._rows(run, wires)
                run, wires = [], []
                self._answer(b"error 1")
                continue
            run.append(line)
            wires.append(wire)
        self._rows(run, wires)
        self._flush_answers()

    def _rows(self, lines: list[bytes], wires: list[Wire]) -> None:
        if wires:
            word = "ok" if self._sink.put(lines, wires) else "error"
            self._answer(f"{word} {len(wires)}".encode("ascii"))

    def finish(self) -> None:
        """Answer what is done, then commit what is journaled and release the sink."""
        self._flush_answers()
        self._sink.close()

    def _answer(self, line: bytes) -> None:
        self._answers.append(line)

    def _flush_answers(self) -> None:
        if self._answers:
            self._out.write(b"\n".join(self._answers) + b"\n")
            self._out.flush()
            self._answers.clear()


def _say(out: IO[bytes], line: str) -> None:
    out.write(line.encode("ascii") + b"\n")
    out.flush()


if __name__ == "__main__":
    sys.exit(main())
