"""The audit writer, in its own process or in the gateway's (SQLite's default): its rows, its
failures, its restarts, through the real gateway."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from algora.audit.log import AuditLog, verify
from algora.audit.writer import WriterGone, WriterProcess
from algora.db.engine import create_registry_engine, make_session_factory
from algora.db.migrate import upgrade
from algora.testing import RunningServer, write_model

from ..conftest import HELLO_MODEL
from .conftest import REFUSE_INSERTS, call_event


def test_writer_and_direct_commits_extend_one_chain(tmp_path: Path) -> None:
    engine = create_registry_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    upgrade(engine)
    sessions = make_session_factory(engine)
    log = AuditLog(sessions)
    other = AuditLog(sessions)  # never started: it commits directly, a second appender

    def from_a_thread() -> None:
        for n in range(1000, 1040):
            other.record_sync(call_event(n))

    async def run() -> None:
        await log.start()
        thread = threading.Thread(target=from_a_thread)
        thread.start()
        await asyncio.gather(*(log.record(call_event(n)) for n in range(200)))
        await asyncio.to_thread(thread.join)
        await log.stop()

    asyncio.run(run())
    other.record_sync(call_event(2000))
    report = verify(sessions)
    assert report.ok, report.message
    assert report.rows == 241 and report.last_id == 241
    engine.dispose()


def test_a_writer_that_cannot_read_the_chain_does_not_start(tmp_path: Path) -> None:
    # A database with no audit table (never migrated): the writer says why and exits.
    url = f"sqlite:///{tmp_path / 'empty.db'}"

    async def start() -> None:
        await WriterProcess.start(url)

    with pytest.raises(WriterGone, match="did not start"):
        asyncio.run(start())


def call(server: RunningServer, request_id: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/algo/admin/hello",
        content=b'"world"',
        headers={
            "Authorization": f"Simple {server.key}",
            "Content-Type": "application/json",
            "X-Request-Id": request_id,
        },
        timeout=60,
    )


def audited_request_ids(data_dir: Path) -> set[str]:
    with sqlite3.connect(data_dir / "registry.db") as db:
        return {row[0] for row in db.execute("SELECT request_id FROM audit_events")}


def writer_pids(server_pid: int) -> list[int]:
    """The gateway's audit writer children, found through /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == server_pid and b"algora.audit.writer" in command:
            found.append(int(entry.name))
    return found


def wait_for_status(server: RunningServer, status: int, prefix: str) -> dict[str, int]:
    """Call until one call answers ``status`` (at most 30 s); every call's status by its id."""
    statuses: dict[str, int] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        request_id = prefix + uuid.uuid4().hex
        statuses[request_id] = call(server, request_id).status_code
        if statuses[request_id] == status:
            return statuses
        time.sleep(0.1)
    raise AssertionError(f"no call answered {status}: {statuses}")


def synced_request_ids(server: RunningServer) -> set[str]:
    """The request ids in the database, after the gateway's writer committed its journal."""
    rows = httpx.get(
        f"{server.url}/api/v1/audit",
        params={"limit": 1},
        headers={"Authorization": f"Simple {server.key}"},
        timeout=60,
    )
    assert rows.status_code == 200, rows.text
    return audited_request_ids(server.data_dir)


def verified_chain(server: RunningServer) -> dict[str, object]:
    """The gateway's verdict on the whole audit chain (``GET /api/v1/audit/verify``)."""
    report = httpx.get(
        f"{server.url}/api/v1/audit/verify",
        headers={"Authorization": f"Simple {server.key}"},
        timeout=60,
    )
    assert report.status_code == 200, report.text
    result: dict[str, object] = report.json()
    return result


WRITERS = {"writer-process": "false", "in-gateway": "true"}
"""``ALGORA_AUDIT_IN_PROCESS`` for each place the journal may be written."""


@contextlib.contextmanager
def serving_hello(
    tmp_path_factory: pytest.TempPathFactory, in_process: str
) -> Iterator[RunningServer]:
    data_dir = tmp_path_factory.mktemp("audit-writer") / "data"
    # Rows may wait one second for a database that refuses them, then calls are refused.
    env = {"ALGORA_AUDIT_MAX_COMMIT_LAG": "1", "ALGORA_AUDIT_IN_PROCESS": in_process}
    with RunningServer(data_dir, env=env) as running:
        root = tmp_path_factory.mktemp("audit-writer-models")
        with running.client() as admin:
            admin.publish(write_model(root / "hello", "hello", HELLO_MODEL))
        yield running


@pytest.fixture(scope="module", params=sorted(WRITERS))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    with serving_hello(tmp_path_factory, WRITERS[request.param]) as running:
        yield running


@pytest.fixture(scope="module")
def process_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A gateway whose audit writer is a process of its own (PostgreSQL's, and an option)."""
    with serving_hello(tmp_path_factory, WRITERS["writer-process"]) as running:
        yield running


def test_rows_the_database_refuses_wait_in_the_journal_then_calls_are_refused(
    server: RunningServer,
) -> None:
    data_dir = server.data_dir
    with sqlite3.connect(data_dir / "registry.db") as db:
        db.execute(REFUSE_INSERTS)
    try:
        journaled = "req-journaled-" + uuid.uuid4().hex
        assert call(server, journaled).status_code == 200  # durable in the journal
        statuses = wait_for_status(server, 503, "req-lagging-")
    finally:
        with sqlite3.connect(data_dir / "registry.db") as db:
            db.execute("DROP TRIGGER refuse_audit")
    refused = call(server, "req-refused-" + uuid.uuid4().hex)
    if refused.status_code == 503:  # the writer has not retried its commit yet
        assert refused.json()["error"]["code"] == "unavailable"
        assert "Hello" not in refused.text  # the model's answer is withheld
        assert refused.headers["retry-after"]
    statuses.update(wait_for_status(server, 200, "req-after-"))
    recorded = synced_request_ids(server)
    assert journaled in recorded  # nothing acknowledged was lost while the database refused
    assert {r for r, status in statuses.items() if status == 200} <= recorded
    assert not {r for r, status in statuses.items() if status == 503} & recorded
    assert "could not commit" in server.log()
    assert "committing audit rows again" in server.log()


def test_a_killed_writers_journal_is_committed_by_the_next(process_server: RunningServer) -> None:
    server = process_server
    assert server.process is not None
    with sqlite3.connect(server.data_dir / "registry.db") as db:
        db.execute(REFUSE_INSERTS)  # the writer journals rows and cannot commit them
    try:
        journaled = "req-orphaned-" + uuid.uuid4().hex
        assert call(server, journaled).status_code == 200
        (writer,) = writer_pids(server.process.pid)
        os.kill(writer, signal.SIGKILL)
    finally:
        with sqlite3.connect(server.data_dir / "registry.db") as db:
            db.execute("DROP TRIGGER refuse_audit")
    assert journaled not in audited_request_ids(server.data_dir)
    wait_for_status(server, 200, "req-restarted-")
    assert journaled in synced_request_ids(server)
    assert "from the journal of a writer that stopped" in server.log()
    journals = server.data_dir / "registry.db-audit-journal"
    assert len(list(journals.glob("*.journal"))) == 1  # the new writer's own


def test_a_killed_writer_is_replaced_and_no_answer_goes_unrecorded(
    process_server: RunningServer,
) -> None:
    server = process_server
    assert server.process is not None
    before = writer_pids(server.process.pid)
    assert len(before) == 1, before
    os.kill(before[0], signal.SIGKILL)
    statuses = wait_for_status(server, 200, "req-kill-")
    assert set(statuses.values()) <= {200, 503}, statuses
    after = writer_pids(server.process.pid)
    assert len(after) == 1 and after != before
    recorded = synced_request_ids(server)
    assert {r for r, status in statuses.items() if status == 200} <= recorded
    chain = verified_chain(server)
    assert chain["ok"], chain
    assert "starting another" in server.log()


def test_a_killed_gateways_journal_is_committed_when_it_starts_again(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with serving_hello(tmp_path_factory, WRITERS["in-gateway"]) as server:
        assert server.process is not None and writer_pids(server.process.pid) == []
        with sqlite3.connect(server.data_dir / "registry.db") as db:
            db.execute(REFUSE_INSERTS)  # journaled by the gateway, not committed
        journaled = "req-orphaned-" + uuid.uuid4().hex
        assert call(server, journaled).status_code == 200
        server.process.kill()
        server.process.wait(timeout=30)
        with sqlite3.connect(server.data_dir / "registry.db") as db:
            db.execute("DROP TRIGGER refuse_audit")
        assert journaled not in audited_request_ids(server.data_dir)
    with RunningServer(server.data_dir) as again:
        assert journaled in synced_request_ids(again)
        assert "from the journal of a writer that stopped" in again.log()
        assert verified_chain(again)["ok"]


def process_tree(root: int) -> list[int]:
    """``root`` and every process below it, found through /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def alive(pid: int) -> bool:
    """Running, or at least not yet a zombie (whose parent may never reap it here)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_no_answered_call_is_lost_when_the_whole_server_is_killed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with RunningServer(data_dir) as server:
        assert server.process is not None
        with server.client() as admin:
            admin.publish(write_model(tmp_path / "hello", "hello", HELLO_MODEL))
        with sqlite3.connect(data_dir / "registry.db") as db:
            db.execute(REFUSE_INSERTS)  # the rows can only reach the journal
        answered = set()
        for _ in range(20):
            request_id = "req-crash-" + uuid.uuid4().hex
            assert call(server, request_id).status_code == 200
            answered.add(request_id)
        tree = process_tree(server.process.pid)  # gateway, audit writer, model workers
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):  # ended on its own meanwhile
                os.kill(pid, signal.SIGKILL)
        server.process.wait()
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in tree[1:]):
            assert time.monotonic() < deadline, "processes of the killed server linger"
            time.sleep(0.1)
    with sqlite3.connect(data_dir / "registry.db") as db:
        db.execute("DROP TRIGGER refuse_audit")
    assert not answered & audited_request_ids(data_dir)
    with RunningServer(data_dir) as restarted:  # its writer commits the dead one's journal
        assert answered <= synced_request_ids(restarted)
        chain = verified_chain(restarted)
        assert chain["ok"], chain
