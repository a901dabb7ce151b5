"""The audit log: the hash chain, one committed row per call and change, queries, the CLI."""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import json
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text
from starlette.testclient import TestClient

from algora.app import create_app
from algora.audit.chain import FIELDS
from algora.audit.log import (
    GENESIS_HASH,
    AuditEvent,
    AuditLog,
    chain_hash,
    parse_anchor,
    row_fields,
    verify,
)
from algora.db.engine import create_registry_engine, make_session_factory
from algora.db.migrate import upgrade
from algora.db.tables import AuditEventRow
from algora.gateway.auditing import RequestHeaders
from algora.gateway.permissions import unaudited
from algora.modelfolder.packing import pack_directory
from algora.settings import Settings
from algora.testing import RunningServer, write_model

from ..conftest import ECHO_MODEL, HELLO_MODEL, InProcess, database_url
from ..helpers import algora

PROXY = ("10.9.8.7", 4242)  # the in-process client's address: inside the trusted proxy range


# --------------------------------------------------------------------------- the chain


def event(n: int, **changes: object) -> AuditEvent:
    now = datetime.now(UTC)
    fields: dict[str, object] = {
        "action": "model.call",
        "received_at": now,
        "completed_at": now + timedelta(milliseconds=3),
        "status": 200,
        "decision": "allow",
        "auth_method": "simple",
        "principal": "alice",
        "resource": f"alice/m{n}",
        "latency_ms": 3.14159,
        "bytes_in": n,
        "bytes_out": 2 * n,
        **changes,
    }
    return AuditEvent(**fields)  # type: ignore[arg-type]


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[tuple[AuditLog, object]]:
    engine = create_registry_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    upgrade(engine)
    sessions = make_session_factory(engine)
    log = AuditLog(sessions)

    async def write() -> None:
        await log.start()
        await asyncio.gather(*(log.record(event(n)) for n in range(1, 51)))
        await log.stop()

    asyncio.run(write())
    yield log, sessions
    engine.dispose()


def test_group_commit_writes_a_gapless_verifiable_chain(chain) -> None:
    log, sessions = chain
    with sessions() as session:
        rows = session.execute(text("SELECT id, prev_hash, hash FROM audit_events ORDER BY id"))
        rows = rows.all()
    assert [r.id for r in rows] == list(range(1, 51))
    assert rows[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    report = verify(sessions)
    assert report.last_hash == rows[-1].hash
    assert report.ok and report.rows == 50 and report.last_id == 50
    log.record_sync(event(51))  # from a thread, no writer running: committed directly
    assert verify(sessions).rows == 51


def test_hash_is_sha256_of_prev_hash_and_canonical_fields() -> None:
    one = event(1)
    fields = row_fields(one, 1)
    # the documented canonical form: a JSON array of the fields in their fixed column order
    canonical = json.dumps([fields[name] for name in fields], separators=(",", ":"))
    assert list(fields)[:3] == ["id", "received_at", "completed_at"]
    expected = hashlib.sha256((GENESIS_HASH + canonical).encode()).hexdigest()
    assert chain_hash(GENESIS_HASH, fields) == expected
    assert chain_hash(GENESIS_HASH, {**fields, "status": 500}) != expected
    assert chain_hash("1" * 64, fields) != expected


def tamper(sessions, sql: str) -> None:
    with sessions() as session:
        session.execute(text(sql))
        session.commit()


def test_verify_names_an_edited_row(chain) -> None:
    _log, sessions = chain
    tamper(sessions, "UPDATE audit_events SET status = 403 WHERE id = 17")
    report = verify(sessions)
    assert not report.ok
    assert (report.first_bad_id, report.problem, report.rows) == (17, "edited", 16)
    assert "row 17" in report.message


def test_verify_names_a_deleted_row(chain) -> None:
    _log, sessions = chain
    tamper(sessions, "DELETE FROM audit_events WHERE id = 20")
    report = verify(sessions)
    assert (report.ok, report.first_bad_id, report.problem) == (False, 21, "deleted")
    assert "20" in report.message


def test_verify_names_swapped_rows(chain) -> None:
    _log, sessions = chain
    # Swap everything but the ids of rows 30 and 31: the order of events changes.
    columns = [c for c in row_fields(event(1), 1) if c != "id"] + ["prev_hash", "hash"]
    assignments = ", ".join(
        f'"{c}" = (SELECT "{c}" FROM audit_events o WHERE o.id = 61 - audit_events.id)'
        for c in columns
    )
    tamper(sessions, f"UPDATE audit_events SET {assignments} WHERE id IN (30, 31)")
    report = verify(sessions)
    assert (report.ok, report.first_bad_id, report.problem) == (False, 30, "reordered")


def test_verify_names_an_edited_row_whose_hash_was_recomputed(chain) -> None:
    _log, sessions = chain
    tamper(sessions, "UPDATE audit_events SET hash = '" + "a" * 64 + "' WHERE id = 5")
    report = verify(sessions)
    assert (report.first_bad_id, report.problem) == (5, "edited")


def test_an_anchor_detects_rows_deleted_from_the_end(chain) -> None:
    _log, sessions = chain
    intact = verify(sessions)
    assert intact.ok and intact.anchor == f"{intact.last_id}:{intact.last_hash}"
    anchor = parse_anchor(intact.anchor)
    tamper(sessions, f"DELETE FROM audit_events WHERE id > {intact.last_id - 3}")
    assert verify(sessions).ok  # the shortened chain is consistent in itself
    report = verify(sessions, anchor)
    assert (report.ok, report.problem, report.rows) == (False, "truncated", intact.rows - 3)
    assert f"row {intact.last_id}" in report.message


def test_an_anchor_detects_a_chain_rewritten_up_to_it(chain) -> None:
    _log, sessions = chain
    anchor = parse_anchor(verify(sessions).anchor or "")
    # Rewrite row 10 and rehash it and every row after it: the chain verifies on its own.
    tamper(sessions, "UPDATE audit_events SET status = 299 WHERE id = 10")
    with sessions() as session:
        rows = session.scalars(select(AuditEventRow).order_by(AuditEventRow.id)).all()
        prev = GENESIS_HASH
        for row in rows:
            row.prev_hash = prev
            row.hash = prev = chain_hash(prev, row_fields(row, row.id))
        session.commit()
    assert verify(sessions).ok
    report = verify(sessions, anchor)
    assert (report.ok, report.problem, report.first_bad_id) == (False, "edited", anchor[0])


def test_a_later_anchor_still_verifies(chain) -> None:
    log, sessions = chain
    anchor = parse_anchor(verify(sessions).anchor or "")
    asyncio.run(log.record(event(99)))
    assert verify(sessions, anchor).ok


@pytest.mark.parametrize(
    "text", ["", "12", "x:" + "a" * 64, "0:" + "a" * 64, "3:abc", "3:" + "G" * 64]
)
def test_bad_anchors_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="anchor"):
        parse_anchor(text)


def test_disabled_log_writes_nothing(tmp_path: Path) -> None:
    engine = create_registry_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    upgrade(engine)
    sessions = make_session_factory(engine)
    log = AuditLog(sessions, enabled=False)
    asyncio.run(log.record(event(1)))
    assert verify(sessions).rows == 0
    engine.dispose()


# --------------------------------------------------------------------------- the gateway


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def audited(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcess]:
    """A gateway behind a trusted proxy (its client address), with hello and echo published."""
    data_dir = tmp_path_factory.mktemp("algora-audit")
    with database_url(request.param) as url:
        settings = Settings(
            data_dir=data_dir,
            default_call_timeout=20,
            database_url=url,
            trusted_proxies=["10.9.0.0/16"],
        )
        app = create_app(settings)
        with TestClient(app, raise_server_exceptions=False, client=PROXY) as http:
            gateway = InProcess(http, data_dir)
            root = tmp_path_factory.mktemp("audit-models")
            gateway.client.publish(write_model(root / "hello", "hello", HELLO_MODEL))
            gateway.client.publish(
                write_model(root / "echo", "echo", ECHO_MODEL, entrypoint="model:Echo")
            )
            bob = http.post("/api/v1/principals", json={"name": "bob"}, headers=gateway.auth)
            assert bob.status_code == 201, bob.text
            gateway.bob = bob.json()  # type: ignore[attr-defined]
            gateway.app = app  # type: ignore[attr-defined]
            yield gateway


def rows_for(gw: InProcess, request_id: str) -> list[dict]:
    response = gw.http.get("/api/v1/audit", params={"request_id": request_id}, headers=gw.auth)
    assert response.status_code == 200, response.text
    return response.json()


def one_row(gw: InProcess, request_id: str) -> dict:
    rows = rows_for(gw, request_id)
    assert len(rows) == 1, rows
    return rows[0]


def post_call(gw: InProcess, path: str, body: bytes, auth: str | None, **headers: str):
    request_id = "req-test-" + uuid.uuid4().hex
    sent = {"Content-Type": "text/plain", "X-Request-Id": request_id, **headers}
    if auth is not None:
        sent["Authorization"] = auth
    return gw.http.post(path, content=body, headers=sent), request_id


def test_a_call_leaves_one_row_with_who_what_where_and_sizes(audited: InProcess) -> None:
    me = audited.client.whoami()
    payload = b"payload-that-must-not-be-logged"
    response, request_id = post_call(
        audited, "/v1/algo/admin/hello/1.x", payload, f"Simple {audited.key}"
    )
    assert response.status_code == 200, response.text
    row = one_row(audited, request_id)
    assert row["action"] == "model.call" and row["resource"] == "admin/hello"
    assert row["version"] == "1.0.0"  # the version served, not the spec asked for
    assert (row["principal"], row["key_id"]) == ("admin", me["key_id"])
    assert row["auth_method"] == "simple"
    assert row["principal_id"] is not None
    assert (row["peer"], row["forwarded_for"]) == (PROXY[0], None)
    assert (row["decision"], row["status"], row["error_code"]) == ("allow", 200, None)
    assert row["bytes_in"] == len(payload) and row["bytes_out"] == len(response.content)
    assert row["latency_ms"] > 0
    assert row["received_at"] <= row["completed_at"]


def test_a_chunked_body_is_counted_as_it_arrives(audited: InProcess) -> None:
    chunks = [b"first-part-", b"second-part-", b"third"]
    request_id = "req-test-" + uuid.uuid4().hex
    response = audited.http.post(
        "/v1/algo/admin/hello/1.x",
        content=iter(chunks),  # no Content-Length: sent chunked
        headers={
            "Authorization": f"Simple {audited.key}",
            "Content-Type": "text/plain",
            "X-Request-Id": request_id,
        },
    )
    assert response.status_code == 200, response.text
    assert one_row(audited, request_id)["bytes_in"] == sum(map(len, chunks))


@pytest.mark.parametrize(
    ("value", "expected"),
    [(b"42", 42), (b"9" * 18, int("9" * 18)), (b"9" * 19, None), (b"-1", None), (b"4 2", None)],
)
def test_only_a_content_length_that_fits_the_row_is_taken(value: bytes, expected: object) -> None:
    # A larger one would fail the whole batch's insert (bytes_in is a signed 64-bit column).
    assert RequestHeaders({"headers": [(b"content-length", value)]}).content_length == expected


@pytest.mark.parametrize(("form", "method"), [("Bearer {}", "bearer"), ("{}", "bare")])
def test_the_auth_method_is_recorded(audited: InProcess, form: str, method: str) -> None:
    response, request_id = post_call(
        audited, "/v1/algo/admin/hello", b"x", form.format(audited.key)
    )
    assert response.status_code == 200
    assert one_row(audited, request_id)["auth_method"] == method


def test_denied_calls_are_recorded(audited: InProcess) -> None:
    no_key, no_key_id = post_call(audited, "/v1/algo/admin/hello", b"x", None)
    assert no_key.status_code == 401
    row = one_row(audited, no_key_id)
    assert (row["decision"], row["status"], row["error_code"]) == ("deny", 401, "unauthenticated")
    assert (row["principal"], row["key_id"], row["auth_method"]) == (None, None, "none")

    wrong, wrong_id = post_call(
        audited, "/v1/algo/admin/hello", b"x", "Simple simNOTAREALKEY000000000000000"
    )
    assert wrong.status_code == 401
    row = one_row(audited, wrong_id)
    assert (row["decision"], row["auth_method"], row["principal"]) == ("deny", "simple", None)

    bob = audited.bob  # type: ignore[attr-defined]
    hidden, hidden_id = post_call(audited, "/v1/algo/admin/hello", b"x", f"Simple {bob['key']}")
    assert hidden.status_code == 404  # admin's private model: bob may not even see it
    row = one_row(audited, hidden_id)
    assert (row["decision"], row["status"], row["error_code"]) == ("deny", 404, "model_not_found")
    assert (row["principal"], row["key_id"]) == ("bob", bob["key_id"])
    assert row["version"] is None and row["resource"] == "admin/hello"


def test_a_failed_call_is_recorded_with_the_version_that_failed(audited: InProcess) -> None:
    response, request_id = post_call(
        audited,
        "/v1/algo/admin/echo",
        b'"boom"',
        f"Simple {audited.key}",
        **{"Content-Type": "application/json"},
    )
    assert response.json()["error"]["error_type"] == "ValueError"
    row = one_row(audited, request_id)
    assert (row["decision"], row["status"], row["error_code"]) == ("allow", 200, "model_error")
    assert row["version"] == "1.0.0"
    errors = audited.http.get(
        "/api/v1/audit", params={"outcome": "error", "limit": 1000}, headers=audited.auth
    ).json()
    assert request_id in {r["request_id"] for r in errors}


def test_publish_and_changes_are_recorded(audited: InProcess, tmp_path: Path) -> None:
    folder = write_model(tmp_path / "hello", "hello", HELLO_MODEL)
    buffer = io.BytesIO()
    pack_directory(folder, buffer)
    archive = buffer.getvalue()
    request_id = "req-publish-" + uuid.uuid4().hex
    response = audited.http.post(
        "/api/v1/models/admin/hello/versions",
        params={"version": "1.1.0"},
        content=archive,
        headers={**audited.auth, "X-Request-Id": request_id},
    )
    assert response.status_code == 202, response.text
    row = one_row(audited, request_id)
    assert (row["action"], row["resource"], row["version"]) == (
        "version.publish",
        "admin/hello",
        "1.1.0",
    )
    assert (row["status"], row["bytes_in"], row["principal"]) == (202, len(archive), "admin")

    denied_id = "req-denied-" + uuid.uuid4().hex
    bob = audited.bob  # type: ignore[attr-defined]
    refused = audited.http.post(
        "/api/v1/principals",
        json={"name": "mallory"},
        headers={"Authorization": f"Simple {bob['key']}", "X-Request-Id": denied_id},
    )
    assert refused.status_code == 403
    row = one_row(audited, denied_id)
    assert (row["action"], row["decision"], row["principal"]) == ("principal.create", "deny", "bob")
    assert row["resource"] == "principal/mallory"

    key_id = "req-key-" + uuid.uuid4().hex
    created = audited.http.post(
        "/api/v1/keys", json={"name": "ci"}, headers={**audited.auth, "X-Request-Id": key_id}
    )
    row = one_row(audited, key_id)
    assert (row["action"], row["resource"]) == ("key.create", f"key/{created.json()['key_id']}")


def test_no_payload_and_no_key_is_ever_recorded(audited: InProcess) -> None:
    post_call(audited, "/v1/algo/admin/hello", b"secret-payload-xyz", f"Simple {audited.key}")
    export = audited.http.get("/api/v1/audit/export", headers=audited.auth)
    assert export.status_code == 200
    text_out = export.text
    bob = audited.bob  # type: ignore[attr-defined]
    for secret in (audited.key, bob["key"], "secret-payload-xyz", "NOTAREALKEY"):
        assert secret not in text_out
    assert "secret-payload" not in text_out


def test_queries_filter_and_page(audited: InProcess) -> None:
    bob = audited.bob  # type: ignore[attr-defined]
    post_call(audited, "/v1/algo/admin/echo", b"x", f"Simple {bob['key']}")

    def get(**params: object) -> list[dict]:
        response = audited.http.get("/api/v1/audit", params=params, headers=audited.auth)
        assert response.status_code == 200, response.text
        return response.json()

    assert {r["principal"] for r in get(principal="bob", limit=1000)} == {"bob"}
    assert {r["resource"] for r in get(model="admin/echo", limit=1000)} == {"admin/echo"}
    assert {r["decision"] for r in get(outcome="deny", limit=1000)} == {"deny"}
    allowed = get(outcome="allow", limit=1000)
    assert allowed and all(r["status"] < 400 and r["error_code"] is None for r in allowed)
    everything = get(limit=1000)
    ids = [r["id"] for r in everything]
    assert ids == sorted(ids, reverse=True)  # newest first
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert get(since=future) == []
    assert set(ids) <= {r["id"] for r in get(until=future, limit=1000)}
    middle = everything[len(everything) // 2]
    earlier = get(until=middle["received_at"], limit=1000)
    assert earlier and all(r["received_at"] < middle["received_at"] for r in earlier)
    # Pages: every read of the log is itself recorded, so page by the cursor, not by offsets.
    first = audited.http.get("/api/v1/audit", params={"limit": 2}, headers=audited.auth)
    cursor = int(first.headers["x-next-cursor"])
    second = get(limit=2, cursor=cursor)
    assert [r["id"] for r in first.json()] == [cursor + 1, cursor]
    assert [r["id"] for r in second] == [cursor - 1, cursor - 2]


def test_export_is_json_lines_in_chain_order_and_verifies(audited: InProcess) -> None:
    export = audited.http.get("/api/v1/audit/export", headers=audited.auth)
    assert export.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in export.text.splitlines()]
    assert [r["id"] for r in lines] == list(range(1, len(lines) + 1))
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(lines))
    report = audited.http.get("/api/v1/audit/verify", headers=audited.auth).json()
    assert report["ok"] is True and report["rows"] >= len(lines)


def test_times_are_rfc3339_utc_and_the_chain_hashes_the_stored_ones(audited: InProcess) -> None:
    listed = audited.http.get("/api/v1/audit", params={"limit": 5}, headers=audited.auth).json()
    export = audited.http.get("/api/v1/audit/export", headers=audited.auth)
    exported = [json.loads(line) for line in export.text.splitlines()]
    for row in [*listed, *exported]:
        for name in ("received_at", "completed_at"):
            assert row[name].endswith("Z"), row[name]
            assert datetime.fromisoformat(row[name]).utcoffset() == timedelta(0)
    # the rows keep naive UTC times, and the chain hashes those: the rendering changed alone
    for row in exported:
        stored = {name: row[name] for name in FIELDS}
        stored.update({t: row[t].removesuffix("Z") for t in ("received_at", "completed_at")})
        assert chain_hash(row["prev_hash"], stored) == row["hash"]


def test_only_admins_read_the_audit_log(audited: InProcess) -> None:
    bob = audited.bob  # type: ignore[attr-defined]
    for path in ("/api/v1/audit", "/api/v1/audit/export", "/api/v1/audit/verify"):
        response = audited.http.get(path, headers={"Authorization": f"Simple {bob['key']}"})
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
    denied = audited.http.get(
        "/api/v1/audit", params={"principal": "bob", "outcome": "deny"}, headers=audited.auth
    ).json()
    assert "audit.read" in {r["action"] for r in denied}


def test_forwarded_for_only_from_a_trusted_proxy(audited: InProcess) -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.5, 10.9.1.1"}
    _, via_proxy = post_call(audited, "/v1/algo/admin/hello", b"x", None, **forwarded)
    row = one_row(audited, via_proxy)
    assert (row["peer"], row["forwarded_for"]) == (PROXY[0], "203.0.113.5, 10.9.1.1")

    app = audited.app  # type: ignore[attr-defined]
    stranger = TestClient(app, raise_server_exceptions=False, client=("192.0.2.44", 5555))
    request_id = "req-stranger-" + uuid.uuid4().hex
    response = stranger.post(
        "/v1/algo/admin/hello",
        content=b"x",
        headers={**forwarded, "X-Request-Id": request_id, "Content-Type": "text/plain"},
    )
    assert response.status_code == 401
    row = one_row(audited, request_id)
    assert (row["peer"], row["forwarded_for"]) == ("192.0.2.44", None)


# --------------------------------------------------------------------------- the CLI


@pytest.mark.slow
def test_cli_lists_exports_verifies_and_finds_tampering(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with RunningServer(data_dir) as server:
        env = {"ALGORA_URL": server.url, "ALGORA_KEY": server.key}
        httpx.post(server.url + "/v1/algo/admin/nothing", content=b"x")  # denied: no key
        assert algora("whoami", env=env).returncode == 0  # auth.login
        listed = algora("audit", "list", "--json", env=env)
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)
        assert {"model.call", "auth.login"} <= {r["action"] for r in rows}
        denied = algora("audit", "list", "--outcome", "deny", "--json", env=env)
        assert {r["decision"] for r in json.loads(denied.stdout)} == {"deny"}
        table = algora("audit", "list", "--model", "admin/nothing", env=env)
        assert "admin/nothing" in table.stdout and "denied" in table.stdout
        out = tmp_path / "audit.jsonl"
        exported = algora("audit", "export", "--output", str(out), env=env)
        assert exported.returncode == 0, exported.stderr
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(lines) >= 3 and lines[0]["id"] == 1
        assert oct(out.stat().st_mode & 0o777) == "0o600"
        verified = algora("audit", "verify", env=env)
        assert verified.returncode == 0, verified.stderr
        assert "intact" in verified.stdout
        earlier = verified.stdout.split("anchor (keep it to detect deletions later): ")[1].split()[
            0
        ]
        later = algora("audit", "verify", "--anchor", earlier, env=env)
        assert later.returncode == 0, later.stderr
        bad = algora("audit", "verify", "--anchor", "12:nothex", env=env)
        assert bad.returncode == 2 and "anchor" in bad.stderr
        refused = httpx.get(
            f"{server.url}/api/v1/audit/verify",
            params={"anchor": "nope"},
            headers={"Authorization": f"Simple {server.key}"},
        )
        assert refused.status_code == 400 and "anchor" in refused.json()["error"]["message"]
    # The gateway is down: an operator checks the database itself, before and after tampering.
    local = algora("audit", "verify", "--data-dir", str(data_dir))
    assert local.returncode == 0
    anchor = local.stdout.split("later): ")[1].split()[0]
    with sqlite3.connect(data_dir / "registry.db") as db:
        db.execute("DELETE FROM audit_events WHERE id = (SELECT max(id) FROM audit_events)")
    assert algora("audit", "verify", "--data-dir", str(data_dir)).returncode == 0
    cut = algora("audit", "verify", "--data-dir", str(data_dir), "--anchor", anchor)
    assert cut.returncode == 1 and "truncated" in cut.stderr, cut.stderr
    with sqlite3.connect(data_dir / "registry.db") as db:
        db.execute("UPDATE audit_events SET principal = 'someone-else' WHERE id = 2")
    broken = algora("audit", "verify", "--data-dir", str(data_dir))
    assert broken.returncode == 1
    assert "row 2" in broken.stderr and "edited" in broken.stderr


def test_the_chain_binds_values_in_the_audit_tables_own_column_order() -> None:
    """The SQLite hot path binds rows by position: its order must be the table's."""
    from algora.audit import chain
    from algora.db.tables import AuditEventRow

    assert tuple(column.name for column in AuditEventRow.__table__.columns) == chain._COLUMNS


def test_every_route_declares_its_audit_action(tmp_path: Path) -> None:
    """Where it declares its permission: there is no second table of route paths."""
    app = create_app(Settings(data_dir=tmp_path))
    assert unaudited(app.openapi()) == []
    assert unaudited({"paths": {"/x": {"get": {"x-algora-permission": "public"}}}}) == ["GET /x"]
