"""The audit journal: rows durable before the database has them, and replayed after a crash."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from algora import audit_writer
from algora.audit import AuditEvent, to_wire, verify
from algora.audit_chain import check_wire
from algora.audit_journal import Journal, journal_directory, recover
from algora.audit_writer import _Writer
from algora.db.engine import create_registry_engine, make_session_factory
from algora.db.migrate import upgrade

REFUSE_INSERTS = (
    "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit refused by the test'); END"
)


def line(n: int) -> bytes:
    now = datetime.now(UTC)
    event = AuditEvent(
        action="model.call",
        received_at=now,
        completed_at=now,
        status=200,
        decision="allow",
        principal="alice",
        request_id=f"req-{n}",
    )
    return json.dumps(to_wire(event), separators=(",", ":")).encode()


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


def crash(writer: _Writer) -> None:
    """What a SIGKILL leaves: the journal on disk, its lock released, nothing committed."""
    assert writer._journal is not None
    os.close(writer._journal._fd)


def test_rows_are_answered_once_journaled_and_committed_later(
    engine: Engine, tmp_path: Path
) -> None:
    out = io.BytesIO()
    writer = _Writer(engine, out)
    writer.take([line(1), line(2), line(3)])
    assert out.getvalue() == b"ok 3\n"
    assert request_ids(tmp_path) == []  # durable in the journal, not yet in the database
    (journal,) = journals(tmp_path)
    assert journal.read_bytes().count(b"\n") == 3
    assert oct(journal.stat().st_mode & 0o777) == "0o600"
    assert oct(journal.parent.stat().st_mode & 0o777) == "0o700"
    delay = writer.commit_due()
    assert delay is not None and delay <= 0.005
    writer.take([line(4), audit_writer.SYNC, line(5)])  # a sync commits what came before it
    assert out.getvalue() == b"ok 3\nok 1\nok 1\nok 1\n"
    assert request_ids(tmp_path) == ["req-1", "req-2", "req-3", "req-4"]
    writer.finish()
    assert request_ids(tmp_path)[-1] == "req-5"
    assert journals(tmp_path) == []  # everything committed: the journal is gone
    with sqlite3.connect(tmp_path / "registry.db") as db:
        assert db.execute("SELECT count(*) FROM audit_journal_marks").fetchone() == (0,)
    assert verify(make_session_factory(engine)).ok


def test_a_crashed_writers_rows_are_committed_once_by_the_next(
    engine: Engine, tmp_path: Path
) -> None:
    first = _Writer(engine, io.BytesIO())
    first.take([line(1), line(2)])
    first.commit()
    first.take([line(3), line(4)])
    crash(first)
    # A torn last line (a crash in the middle of a write) was never answered: it is skipped.
    with (journals(tmp_path)[0]).open("ab") as journal:
        journal.write(line(5)[:40])
    second = _Writer(engine, io.BytesIO())
    assert request_ids(tmp_path) == ["req-1", "req-2", "req-3", "req-4"]  # no duplicates
    assert len(journals(tmp_path)) == 1  # the crashed one is gone; the second writer's stays
    second.take([line(6)])
    second.finish()
    assert request_ids(tmp_path)[-1] == "req-6"
    report = verify(make_session_factory(engine))
    assert report.ok and report.rows == 5


def test_a_running_writers_journal_is_left_alone(engine: Engine, tmp_path: Path) -> None:
    running = _Writer(engine, io.BytesIO())
    running.take([line(1)])
    with engine.connect() as connection:
        driver = connection.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        assert recover(tmp_path / "registry.db-audit-journal", driver) == 0
    assert request_ids(tmp_path) == []
    running.finish()
    assert request_ids(tmp_path) == ["req-1"]


def test_a_database_that_refuses_rows_keeps_them_journaled_until_the_lag_limit(
    engine: Engine, tmp_path: Path
) -> None:
    with sqlite3.connect(tmp_path / "registry.db") as db:
        db.execute(REFUSE_INSERTS)
    out = io.BytesIO()
    writer = _Writer(engine, out, max_commit_lag=0.05)
    writer.take([line(1)])
    assert not writer.commit()
    delay = writer.commit_due()
    assert delay is not None and delay > 0.1  # retried later, not in a spin
    time.sleep(0.06)
    writer.take([line(2)])  # the oldest waiting row is past the limit: refused, not journaled
    writer.take([audit_writer.SYNC])
    assert out.getvalue() == b"ok 1\nerror 1\nerror 1\n"
    with sqlite3.connect(tmp_path / "registry.db") as db:
        db.execute("DROP TRIGGER refuse_audit")
    assert writer.commit()
    writer.take([line(3)])
    writer.finish()
    assert request_ids(tmp_path) == ["req-1", "req-3"]


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
    monkeypatch.setattr(audit_writer, "_JOURNAL_ROTATE_BYTES", 500)
    writer = _Writer(engine, io.BytesIO())
    (first,) = journals(tmp_path)
    writer.take([line(n) for n in range(5)])
    assert writer.commit()
    (second,) = journals(tmp_path)
    assert second != first
    writer.take([line(9)])
    crash(writer)
    _Writer(engine, io.BytesIO()).finish()
    assert request_ids(tmp_path) == [f"req-{n}" for n in (0, 1, 2, 3, 4, 9)]


def test_a_journal_appends_all_or_nothing(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journals")
    journal.append(b"one\n")
    os.close(journal._fd)
    journal._fd = os.open(os.devnull, os.O_RDONLY)  # every write now fails
    with pytest.raises(OSError):
        journal.append(b"two\n")
    assert journal.size == 4
    journal.close(remove=False)
    assert journal.path.read_bytes() == b"one\n"


def test_only_sqlite_files_have_journals(tmp_path: Path) -> None:
    engine = create_registry_engine(f"sqlite:///{tmp_path / 'r.db'}")
    assert journal_directory(engine.url) == tmp_path / "r.db-audit-journal"
    memory = create_registry_engine("sqlite://")
    assert journal_directory(memory.url) is None


@pytest.mark.parametrize(
    ("position", "value"),
    [(0, -1), (0, "2026-01-01"), (1, 10**20), (3, 1.5), (5, None), (16, float("inf")), (17, 2**63)],
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
    crashed = _Writer(engine, io.BytesIO())
    crashed.take([line(1), line(2)])
    crash(crashed)
    engine.dispose()
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
