"""The audit journal: rows durable before the database has them, and replayed after a crash."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import PIPE

import pytest
from sqlalchemy import Engine

from algora.audit import sinks as audit_sinks
from algora.audit import writer as audit_writer
from algora.audit.chain import check_wire
from algora.audit.journal import Journal, journal_directory, recover
from algora.audit.log import to_wire, verify
from algora.audit.writer import WriterConfig, _Writer
from algora.db.engine import create_registry_engine, make_session_factory
from algora.db.migrate import upgrade

from .conftest import REFUSE_INSERTS, call_event


def line(n: int) -> bytes:
    return json.dumps(to_wire(call_event(n)), separators=(",", ":")).encode()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_registry_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def request_ids(tmp_path: Path) -> list[str]:
    with sqlite3.connect(tmp_path / "registry.db") as db:
        return [row[0] for row in db.execute("SELECT request_id FROM audit_events ORDER BY id")]


def journals(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "registry.db-audit-journal").glob("*.journal"))


def refuse_inserts(tmp_path: Path, refuse: bool = True) -> None:
    with sqlite3.connect(tmp_path / "registry.db") as db:
        db.execute(REFUSE_INSERTS if refuse else "DROP TRIGGER refuse_audit")


def eventually(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, "not within 10 s"
        time.sleep(0.01)


class WriterProcess:
    """``python -m algora.audit.writer`` driven by hand, so that it can be SIGKILLed."""

    def __init__(self, tmp_path: Path) -> None:
        command = [sys.executable, "-m", "algora.audit.writer"]
        self.process = subprocess.Popen(command, stdin=PIPE, stdout=PIPE)
        assert self.process.stdout is not None and self.process.stdin is not None
        self.stdin, self.stdout = self.process.stdin, self.process.stdout
        self.stdin.write(WriterConfig(f"sqlite:///{tmp_path / 'registry.db'}").line())
        self.stdin.flush()
        assert self.stdout.readline() == b"ready\n"

    def send(self, *lines: bytes) -> list[bytes]:
        """Send lines; their answers, one per line."""
        self.stdin.write(b"".join(line + b"\n" for line in lines))
        self.stdin.flush()
        answers: list[bytes] = []
        while len(answers) < len(lines):
            word, count = self.stdout.readline().split()
            answers += [word] * int(count)
        return answers

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self.stdin.close()
        self.stdout.close()


def test_rows_are_answered_once_journaled_and_committed_soon_after(
    engine: Engine, tmp_path: Path
) -> None:
    out = io.BytesIO()
    writer = _Writer(engine, out)
    writer.take([line(1), line(2), line(3)])
    assert out.getvalue() == b"ok 3\n"
    (journal,) = journals(tmp_path)
    assert journal.read_bytes().count(b"\n") == 3  # durable before the answer
    assert oct(journal.stat().st_mode & 0o777) == "0o600"
    assert oct(journal.parent.stat().st_mode & 0o777) == "0o700"
    eventually(lambda: len(request_ids(tmp_path)) == 3)  # committed once the input pauses
    writer.take([line(4), audit_writer.SYNC, line(5)])  # a sync commits what came before it
    assert out.getvalue() == b"ok 3\nok 1\nok 1\nok 1\n"
    assert request_ids(tmp_path)[:4] == ["req-1", "req-2", "req-3", "req-4"]
    writer.finish()
    assert request_ids(tmp_path)[-1] == "req-5"
    assert journals(tmp_path) == []  # everything committed: the journal is gone
    with sqlite3.connect(tmp_path / "registry.db") as db:
        assert db.execute("SELECT count(*) FROM audit_journal_marks").fetchone() == (0,)
    assert verify(make_session_factory(engine)).ok


def test_a_killed_writers_rows_are_committed_once_by_the_next(
    engine: Engine, tmp_path: Path
) -> None:
    first = WriterProcess(tmp_path)
    assert first.send(line(1), line(2), audit_writer.SYNC) == [b"ok"] * 3
    refuse_inserts(tmp_path)  # from here on the first writer can only journal
    assert first.send(line(3), line(4)) == [b"ok", b"ok"]
    first.kill()
    refuse_inserts(tmp_path, False)
    # A torn last line (a kill in the middle of a write) was never answered: it is skipped.
    with journals(tmp_path)[0].open("ab") as journal:
        journal.write(line(5)[:40])
    assert request_ids(tmp_path) == ["req-1", "req-2"]
    second = _Writer(engine, io.BytesIO())
    assert request_ids(tmp_path) == ["req-1", "req-2", "req-3", "req-4"]  # once each
    assert len(journals(tmp_path)) == 1  # the killed writer's is gone; the second's stays
    second.take([line(6)])
    second.finish()
    assert request_ids(tmp_path)[-1] == "req-6"
    report = verify(make_session_factory(engine))
    assert report.ok and report.rows == 5


def test_a_running_writers_journal_is_left_alone(engine: Engine, tmp_path: Path) -> None:
    refuse_inserts(tmp_path)
    running = WriterProcess(tmp_path)
    assert running.send(line(1)) == [b"ok"]
    refuse_inserts(tmp_path, False)
    with engine.connect() as connection:
        driver = connection.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        assert recover(tmp_path / "registry.db-audit-journal", driver) == 0
    running.stdin.close()  # the writer commits what it journaled, then exits
    assert running.process.wait(30) == 0
    running.stdout.close()
    assert request_ids(tmp_path) == ["req-1"]
    assert journals(tmp_path) == []


def test_a_database_that_refuses_rows_keeps_them_journaled_until_the_lag_limit(
    engine: Engine, tmp_path: Path
) -> None:
    refuse_inserts(tmp_path)
    out = io.BytesIO()
    writer = _Writer(engine, out, max_commit_lag=0.3)
    writer.take([line(1)])
    writer.take([audit_writer.SYNC])  # the commit fails: the sync says so
    time.sleep(0.4)
    writer.take([line(2)])  # the oldest waiting row is past the limit: refused, not journaled
    assert out.getvalue() == b"ok 1\nerror 1\nerror 1\n"
    refuse_inserts(tmp_path, False)
    eventually(lambda: request_ids(tmp_path) == ["req-1"])  # the committer retries
    writer.take([line(3)])
    writer.finish()
    assert out.getvalue().endswith(b"ok 1\n")
    assert request_ids(tmp_path) == ["req-1", "req-3"]


def test_a_writer_that_stops_while_the_database_refuses_leaves_its_journal(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    refuse_inserts(tmp_path)
    stopping = _Writer(engine, io.BytesIO())
    stopping.take([line(1), line(2)])
    stopping.finish()  # two tries, then it leaves the rows to the next writer
    assert "stay in journal" in caplog.text
    assert len(journals(tmp_path)) == 1
    refuse_inserts(tmp_path, False)
    _Writer(engine, io.BytesIO()).finish()
    assert request_ids(tmp_path) == ["req-1", "req-2"]
    assert journals(tmp_path) == []


def test_rows_the_database_would_not_take_are_refused_alone(engine: Engine, tmp_path: Path) -> None:
    out = io.BytesIO()
    writer = _Writer(engine, out)
    bad = json.loads(line(2))
    bad[14] = None  # status is required
    writer.take([line(1), json.dumps(bad).encode(), b"[1, 2", line(3)])
    assert out.getvalue() == b"ok 1\nerror 1\nerror 1\nok 1\n"
    writer.finish()
    assert request_ids(tmp_path) == ["req-1", "req-3"]


def test_a_full_journal_is_replaced_once_committed(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_sinks, "JOURNAL_ROTATE_BYTES", 500)
    writer = _Writer(engine, io.BytesIO())
    (first,) = journals(tmp_path)
    writer.take([*(line(n) for n in range(5)), audit_writer.SYNC])
    eventually(lambda: not first.exists())  # replaced, and removed once its rows are in
    assert len(journals(tmp_path)) == 1
    writer.take([line(9)])
    writer.finish()
    assert request_ids(tmp_path) == [f"req-{n}" for n in (0, 1, 2, 3, 4, 9)]
    assert journals(tmp_path) == []


def test_a_journal_that_cannot_be_cut_back_takes_no_more_rows(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journals")
    journal.append(b"one\n")
    os.close(journal._fd)
    journal._fd = os.open(os.devnull, os.O_RDONLY)  # writes fail, and so does cutting back
    with pytest.raises(OSError):
        journal.append(b"two\n")
    assert journal.size == 4 and journal.broken
    with pytest.raises(OSError, match="partial write"):
        journal.append(b"three\n")
    journal.close(remove=False)
    assert journal.path.read_bytes() == b"one\n"


def test_a_broken_journal_is_replaced(engine: Engine, tmp_path: Path) -> None:
    out = io.BytesIO()
    writer = _Writer(engine, out)
    writer.take([line(1)])
    (first,) = journals(tmp_path)
    writer._sink._journal.broken = True  # type: ignore[union-attr]
    writer.take([line(2)])  # row 1 is not committed yet: the broken journal must stay
    writer.take([audit_writer.SYNC, line(3)])  # committed: the next row goes to a new journal
    writer.finish()
    assert out.getvalue() == b"ok 1\nerror 1\nok 1\nok 1\n"
    assert request_ids(tmp_path) == ["req-1", "req-3"]
    assert not first.exists() and journals(tmp_path) == []


def test_a_row_that_slipped_past_the_checks_is_set_aside_not_retried_for_ever(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_writer, "check_wire", lambda wire: None)
    poison = json.loads(line(2))
    poison[2] = "\ud800"
    out = io.BytesIO()
    writer = _Writer(engine, out)
    writer.take([line(1), json.dumps(poison).encode(), line(3), audit_writer.SYNC])
    writer.finish()
    assert out.getvalue() == b"ok 3\nok 1\n"
    assert request_ids(tmp_path) == ["req-1", "req-3"]
    rejected = (tmp_path / "registry.db-audit-journal" / "rejected.jsonl").read_text()
    assert "req-2" in rejected
    assert verify(make_session_factory(engine)).ok


def test_only_sqlite_files_have_journals(tmp_path: Path) -> None:
    engine = create_registry_engine(f"sqlite:///{tmp_path / 'r.db'}")
    assert journal_directory(engine.url) == tmp_path / "r.db-audit-journal"
    memory = create_registry_engine("sqlite://")
    assert journal_directory(memory.url) is None


@pytest.mark.parametrize(
    ("position", "value"),
    [
        (0, -1),
        (0, "2026-01-01"),
        (1, 10**20),
        (3, 1.5),
        (5, None),
        (2, "\ud800"),  # a lone surrogate: sqlite3 cannot bind it
        (16, float("inf")),
        (16, 2**63),
        (16, 10**400),
        (17, 2**63),
    ],
)
def test_check_wire_refuses_what_the_table_would_not_take(position: int, value: object) -> None:
    wire = json.loads(line(1))
    check_wire(wire)
    wire[position] = value
    with pytest.raises(ValueError):
        check_wire(wire)


def test_verify_on_a_stopped_gateways_data_dir_commits_its_journal_first(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    engine = create_registry_engine(f"sqlite:///{data_dir / 'registry.db'}")
    upgrade(engine)
    engine.dispose()
    refuse_inserts(data_dir)
    crashed = WriterProcess(data_dir)
    assert crashed.send(line(1), line(2)) == [b"ok", b"ok"]
    crashed.kill()
    refuse_inserts(data_dir, False)
    verified = subprocess.run(
        [sys.executable, "-m", "algora", "audit", "verify", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("ALGORA_")},
    )
    assert verified.returncode == 0, verified.stderr
    assert "committed 2 audit row(s)" in verified.stderr
    assert "intact" in verified.stdout
    assert request_ids(data_dir) == ["req-1", "req-2"]
    assert journals(data_dir) == []


def test_the_writer_takes_its_configuration_on_stdin_and_refuses_anything_else() -> None:
    """No database URL travels in argv or the environment: a writer given none says so."""
    command = [sys.executable, "-m", "algora.audit.writer"]
    done = subprocess.run(command, input=b'["not", "a config"]\n', capture_output=True, timeout=30)
    assert done.returncode == 2
    assert b"not the writer's configuration" in done.stderr
    assert WriterConfig.parse(WriterConfig("sqlite:///x.db", 2.5).line()) == WriterConfig(
        "sqlite:///x.db", 2.5
    )
