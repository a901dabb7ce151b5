"""Call records and feedback on each registry database: only versions that opt in are recorded,
large or binary answers are kept unscored, a shadow answering after the feedback is scored when
it is written, and records past the retention are pruned (their feedback then a 404)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.principals import Caller
from algora.db.tables import CallRecord, Model, Version
from algora.errors import NotFound
from algora.registry.feedback import Feedback
from algora.registry.records import MAX_OUTPUT_BYTES, CallRecords, output_text
from algora.registry.scoring import score
from algora.workers.spec import CallResult

from ..conftest import DATABASES, database_url
from .conftest import migrated, owned_model


@dataclass(frozen=True)
class Answered:
    caller: Caller
    spec: str | None = None
    shadow_of: str = ""


@dataclass
class World:
    sessions: sessionmaker[Session]
    owner: Caller
    model: Model
    recording: Version
    quiet: Version


@pytest.fixture(params=DATABASES)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """olga/m: 1.0.0 records its calls, 1.1.0 does not."""
    with database_url(request.param) as url, migrated(url, tmp_path) as sessions:
        with sessions() as session:
            olga, model = owned_model(session, "olga", "m")
            recording, quiet = (
                Version(model_id=model.id, major=1, minor=minor, patch=0, manifest=manifest)
                for minor, manifest in ((0, {"monitoring": {"feedback": True}}), (1, {}))
            )
            session.add_all([recording, quiet])
            session.commit()
        owner = Caller(olga.id, "olga", False, "k1", ("*",))
        yield World(sessions, owner, model, recording, quiet)


def _json(value: Any) -> CallResult:
    return CallResult(
        content_type="json", payload=json.dumps(value).encode(), stdout="", duration=0
    )


def _rows(world: World) -> list[CallRecord]:
    with world.sessions() as session:
        return list(session.scalars(select(CallRecord).order_by(CallRecord.id)))


@pytest.mark.parametrize(
    ("output", "label", "value", "scored"),
    [
        ('"cat"', "cat", None, (True, None)),
        ('{"label":"dog","score":0.9}', "cat", None, (False, None)),
        ('{"prediction":1}', 1.0, None, (True, None)),
        ("true", 1, None, (False, None)),  # a boolean is not a number
        ('{"score":0.9}', "cat", None, (None, None)),  # nothing to compare
        ('{"value":2.5}', None, 3.0, (None, 0.5)),
        ('"high"', None, 3.0, (None, None)),
        (None, "cat", None, (None, None)),  # not recorded: too large, or binary
    ],
)
def test_answers_are_scored_by_their_prediction(
    output: str | None, label: Any, value: float | None, scored: tuple[Any, Any]
) -> None:
    assert score(output, label, value) == scored


def test_outputs_are_recorded_as_json_within_the_cap() -> None:
    assert output_text(_json({"b": 1, "a": [1, 2]})) == '{"a":[1,2],"b":1}'
    assert output_text(CallResult("text", b"hello", "", 0)) == '"hello"'
    assert output_text(_json("x" * MAX_OUTPUT_BYTES)) is None
    assert output_text(CallResult("binary", b"\x00", "", 0)) is None


def test_only_versions_that_opt_in_are_recorded(world: World) -> None:
    records = CallRecords(world.sessions, retention_days=30)
    call = Answered(world.owner, spec="production")
    records.record(call, world.model, world.recording, "req-1", _json("cat"))
    records.record(call, world.model, world.quiet, "req-2", _json("cat"))
    records.write()
    [row] = _rows(world)
    assert (row.request_id, row.alias, row.caller, row.output) == (
        "req-1",
        "production",
        "olga",
        '"cat"',
    )


def test_a_shadow_answering_after_the_feedback_is_scored_when_written(world: World) -> None:
    scored: list[tuple[Any, ...]] = []
    records = CallRecords(world.sessions, 30, on_scored=lambda *args: scored.append(args))
    feedback = Feedback(world.sessions, records, 30)
    records.record(Answered(world.owner, "live"), world.model, world.recording, "req-1", _json(1))
    answer = feedback.give(world.owner, "req-1", value=3.0)
    assert (answer.scored, answer.abs_error, answer.alias) == (True, 2.0, "live")
    copy = Answered(world.owner, "live", shadow_of="req-1")
    records.record(copy, world.model, world.recording, "req-shadow", _json(2.5))
    records.write()
    shadow = [row for row in _rows(world) if row.shadow]
    assert [(row.request_id, row.abs_error) for row in shadow] == [("req-1", 0.5)]
    assert scored == [("olga/m", "1.0.0", "live", None, 0.5)]


def test_records_past_the_retention_are_pruned(world: World) -> None:
    records = CallRecords(world.sessions, retention_days=1)
    call = Answered(world.owner)
    for request_id in ("req-old", "req-new"):
        records.record(call, world.model, world.recording, request_id, _json("cat"))
    records.write()
    with world.sessions() as session:
        session.execute(
            update(CallRecord)
            .where(CallRecord.request_id == "req-old")
            .values(created_at=datetime.now(UTC).replace(tzinfo=None) - timedelta(days=2))
        )
        session.commit()
    later = CallRecords(world.sessions, retention_days=1)  # a gateway prunes on its first write
    later.write()
    assert [row.request_id for row in _rows(world)] == ["req-new"]
    with pytest.raises(NotFound, match="for 1 days after a call"):
        Feedback(world.sessions, later, 1).give(world.owner, "req-old", label="cat")
    assert Feedback(world.sessions, later, 1).give(world.owner, "req-new", label="cat").correct


def test_feedback_waits_for_a_write_in_progress(world: World) -> None:
    """The rollups' loop may have taken the call's record and not yet committed it: feedback
    then waits for that write rather than finding nothing pending and answering 404."""
    records = CallRecords(world.sessions, 30)
    feedback = Feedback(world.sessions, records, 30)
    records.record(Answered(world.owner), world.model, world.recording, "req-1", _json("cat"))
    engine = world.sessions.kw["bind"]
    inserting, go_on = threading.Event(), threading.Event()

    def slow_insert(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO CALL_RECORDS"):
            inserting.set()
            go_on.wait(10)

    event.listen(engine, "before_cursor_execute", slow_insert)
    try:
        loop_write = threading.Thread(target=records.write)
        loop_write.start()
        assert inserting.wait(10)
        answers: list[Any] = []
        given = threading.Thread(
            target=lambda: answers.append(feedback.give(world.owner, "req-1", label="cat"))
        )
        given.start()
        given.join(0.3)
        assert given.is_alive()  # waiting on the loop's write, not answering 404
        go_on.set()
        loop_write.join(10)
        given.join(10)
    finally:
        go_on.set()
        event.remove(engine, "before_cursor_execute", slow_insert)
    [answer] = answers
    assert answer.correct is True
