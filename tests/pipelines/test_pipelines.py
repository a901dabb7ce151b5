"""Pipelines published and called through the HTTP API, on the gateway in-process.

The cast: alice owns the step models (plain Python, no dependencies) and the pipelines; bob
may call alice's public models and pipelines, but not her private ``secret`` until she grants
it to him. Every step is a real model in its own worker.
"""

from __future__ import annotations

import io
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from algora.errors import ModelError
from algora.modelfolder.packing import pack_directory
from algora.testing import write_model

from ..conftest import People, in_process
from ..helpers import new_users

STEPS = {
    "double": "def apply(input: int) -> int:\n    return input * 2\n",
    "square": "def apply(input: int) -> int:\n    return input * input\n",
    "add": textwrap.dedent(
        """
        from typing import TypedDict


        class Pair(TypedDict):
            a: int
            b: int


        def apply(input: Pair) -> int:
            return input["a"] + input["b"]
        """
    ),
    "shout": "def apply(input: str) -> str:\n    return input.upper()\n",
    "boom": "def apply(input: int) -> int:\n    raise ValueError('no luck with ' + str(input))\n",
    "nap": "import time\n\n\ndef apply(input: float) -> float:\n    time.sleep(input)\n"
    "    return input\n",
    "secret": "def apply(input: int) -> int:\n    return input + 1000\n",
    "raw": "def apply(input: int) -> bytes:\n    return bytes([input])\n",
}

CALC = """
[pipeline]
name = "calc"
description = "double and square x, add them when asked"

[pipeline.output]
double = "$.steps.double.output"
square = "$.steps.square.output"
sum = "$.steps.sum.output"

[[steps]]
name = "double"
model = "double"
input = "$.request.x"

[[steps]]
name = "square"
model = "alice/square"
version = "1.x"
input = "$.request.x"

[[steps]]
name = "sum"
model = "add"
input = { a = "$.steps.double.output", b = "$.steps.square.output" }
when = '$.request.mode == "full"'
"""


def pipeline_folder(root: Path, name: str, body: str, *, timeout: float | None = None) -> Path:
    """A folder holding only ``pipeline.toml``: ``[pipeline] name`` and ``body`` (its steps)."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    head = f'[pipeline]\nname = "{name}"\n' + (f"timeout = {timeout}\n" if timeout else "")
    (folder / "pipeline.toml").write_text(head + textwrap.dedent(body), encoding="utf-8")
    return folder


def publish_raw(people: People, who: str, folder: Path, name: str) -> Any:
    """POST the packed folder, as the SDK does but with no check of the folder beforehand."""
    buffer = io.BytesIO()
    pack_directory(folder, buffer)
    return people.http.post(
        f"/api/v1/models/{who}/{name}/versions",
        content=buffer.getvalue(),
        headers={**people.auth(who), "Content-Type": "application/gzip"},
    )


def publish_public(people: People, folder: Path) -> None:
    """alice publishes ``folder`` (named after its model) and lets everyone call it."""
    people.sdk("alice").publish(folder)
    public = {"visibility": "public"}
    answer = people.req("alice", "PATCH", f"/api/v1/models/alice/{folder.name}", public)
    assert answer.status_code == 200, answer.text


def call(people: People, who: str, ref: str, data: Any, **params: Any) -> Any:
    return people.http.post(f"/v1/algo/{ref}", json=data, headers=people.auth(who), params=params)


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> Iterator[People]:
    root = tmp_path_factory.mktemp("pipelines")
    with in_process(root / "data") as gw:
        cast = People(gw)
        cast.keys.update(new_users(gw.client, "alice", "bob"))
        for name, code in STEPS.items():
            if name == "secret":
                cast.sdk("alice").publish(write_model(root / name, name, code))
            else:
                publish_public(cast, write_model(root / name, name, code))
        (root / "calc").mkdir()
        (root / "calc" / "pipeline.toml").write_text(CALC, encoding="utf-8")
        publish_public(cast, root / "calc")
        yield cast


def test_steps_fan_out_and_in_over_the_native_and_algorithmia_apis(people: People) -> None:
    answer = people.sdk("bob").model("alice/calc").call({"x": 3, "mode": "full"})
    assert answer == {"double": 6, "square": 9, "sum": 15}
    envelope = call(people, "bob", "alice/calc/1.0.0", {"x": 4})
    assert envelope.status_code == 200, envelope.text
    assert envelope.json()["result"] == {"double": 8, "square": 16, "sum": None}  # skipped
    assert envelope.json()["metadata"]["content_type"] == "json"
    assert envelope.headers["X-Algora-Version"] == "1.0.0"


def test_every_step_is_audited_under_the_pipeline_call(people: People) -> None:
    answer = call(people, "bob", "alice/calc", {"x": 2, "mode": "full"})
    request_id = answer.headers["X-Request-Id"]
    events = people.req("admin", "GET", "/api/v1/audit", limit=50).json()
    steps = [e for e in events if e.get("parent_request_id") == request_id]
    assert sorted(e["resource"] for e in steps) == ["alice/add", "alice/double", "alice/square"]
    assert {(e["principal"], e["action"], e["status"]) for e in steps} == {
        ("bob", "model.call", 200)
    }
    own = [e for e in events if e["request_id"] == request_id]
    assert [(e["resource"], e["principal"]) for e in own] == [("alice/calc", "bob")]
    # double and square need only the request: each starts before the other has answered
    times = {
        e["resource"].split("/")[1]: (parse(e["received_at"]), parse(e["completed_at"]))
        for e in steps
    }
    assert times["double"][0] < times["square"][1] and times["square"][0] < times["double"][1]
    assert times["add"][0] >= max(times["double"][1], times["square"][1])  # it needs both


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def totals(people: People, model: str, calls: int = 1) -> dict[str, Any]:
    """``model``'s statistics of the last hour, once ``calls`` of its calls have been written
    (every few seconds: two calls may be written by two flushes)."""
    deadline = time.monotonic() + 60
    while True:
        versions = people.sdk("alice").stats(model, since="1h")["versions"]
        counted = versions and versions[0]["total"]["calls"] >= calls
        if counted or time.monotonic() > deadline:
            assert versions, f"no statistics for {model}"
            return dict(versions[0]["total"])
        time.sleep(0.5)


def test_a_private_step_is_refused_by_name_until_its_owner_grants_it(
    people: People, tmp_path: Path
) -> None:
    body = """
    [[steps]]
    name = "hidden"
    model = "secret"
    input = "$.request"
    """
    publish_public(people, pipeline_folder(tmp_path, "uses-secret", body))
    assert call(people, "alice", "alice/uses-secret", 1).json()["result"] == 1001
    refused = call(people, "bob", "alice/uses-secret", 1)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"] == {
        "code": "permission_denied",
        "message": "pipeline step 'hidden' calls 'alice/secret', which 'bob' may not call; "
        "its owner can grant 'bob' the right to call it",
    }
    grant = people.req("alice", "PUT", "/api/v1/models/alice/secret/grants/bob", {"right": "call"})
    assert grant.status_code == 200, grant.text
    assert call(people, "bob", "alice/uses-secret", 1).json()["result"] == 1001


def test_a_failing_step_fails_the_call_naming_the_step_and_is_counted(
    people: People, tmp_path: Path
) -> None:
    body = """
    [[steps]]
    name = "first"
    model = "double"

    [[steps]]
    name = "explode"
    model = "boom"
    input = "$.steps.first.output"
    """
    publish_public(people, pipeline_folder(tmp_path, "fails", body))
    failed = call(people, "alice", "alice/fails", 2)  # Algorithmia's envelope: 200, "error"
    error = failed.json()["error"]
    assert error["error_type"] == "ValueError"
    assert error["message"] == "pipeline step 'explode' ('alice/boom') failed: no luck with 4"
    with pytest.raises(ModelError, match="pipeline step 'explode'"):
        people.sdk("bob").model("alice/fails").call(2)
    # each step is counted in its own version's statistics, the pipeline in its own
    double, boom = totals(people, "alice/double", 2), totals(people, "alice/boom", 2)
    assert double["calls"] >= 2 and double["errors"] == 0 and double["p50_ms"] > 0
    assert boom["calls"] >= 2 and boom["model_errors"] >= 2
    assert totals(people, "alice/fails", 2)["errors"] >= 2


def test_for_each_calls_a_step_once_per_element(people: People, tmp_path: Path) -> None:
    body = """
    [[steps]]
    name = "doubled"
    model = "double"
    for_each = "$.request.numbers"
    input = "$.item.n"

    [[steps]]
    name = "squared"
    model = "square"
    for_each = "$.steps.doubled.output"
    input = "$.item"
    """
    publish_public(people, pipeline_folder(tmp_path, "each", body))
    numbers = [{"n": n} for n in (1, 2, 3)]
    assert call(people, "bob", "alice/each", {"numbers": numbers}).json()["result"] == [4, 16, 36]
    assert call(people, "bob", "alice/each", {"numbers": []}).json()["result"] == []
    refused = call(people, "bob", "alice/each", {"numbers": 5})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["message"] == (
        "pipeline step 'doubled': for_each = '$.request.numbers' is int, not a list"
    )


def test_a_step_answering_bytes_is_refused_by_name(people: People, tmp_path: Path) -> None:
    publish_public(
        people, pipeline_folder(tmp_path, "bytes", '[[steps]]\nname = "b"\nmodel = "raw"\n')
    )
    with pytest.raises(ModelError) as raised:
        people.sdk("bob").model("alice/bytes").call(7)
    assert raised.value.message == (
        "pipeline step 'b' answered binary, which a pipeline cannot pass on: "
        "its steps must answer JSON or text"
    )


def test_the_call_deadline_bounds_the_whole_pipeline(people: People, tmp_path: Path) -> None:
    body = """
    [[steps]]
    name = "sleepy"
    model = "nap"
    """
    people.sdk("alice").publish(pipeline_folder(tmp_path, "slow", body, timeout=30))
    assert call(people, "alice", "alice/slow", 0.01).json()["result"] == 0.01
    late = call(people, "alice", "alice/slow", 20, timeout=1)
    assert late.status_code == 504, late.text
    assert late.json()["error"]["code"] == "timeout"


def test_pipelines_nest_and_a_loop_is_stopped(people: People, tmp_path: Path) -> None:
    outer = """
    [[steps]]
    name = "inner"
    model = "alice/calc"
    input = { x = "$.request", mode = "full" }

    [[steps]]
    name = "twice"
    model = "double"
    input = "$.steps.inner.output.sum"
    """
    people.sdk("alice").publish(pipeline_folder(tmp_path, "outer", outer))
    assert call(people, "alice", "alice/outer", 3).json()["result"] == 30
    first = '[[steps]]\nname = "again"\nmodel = "double"\n'
    people.sdk("alice").publish(pipeline_folder(tmp_path / "1", "loop", first))
    again = '[[steps]]\nname = "again"\nmodel = "loop"\n'  # 2.0.0 calls itself, the latest
    people.sdk("alice").publish(pipeline_folder(tmp_path / "2", "loop", again), bump="major")
    looped = call(people, "alice", "alice/loop", 1)
    assert looped.status_code == 400, looped.text
    assert "calls deep" in looped.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('[[steps]]\nname = "a"\nmodel = "nobody-has-this"\n', "step 'a' calls"),
        ('[[steps]]\nname = "v"\nmodel = "double"\nversion = "7.x"\n', "step 'v' calls"),
        ('[[steps]]\nname = "s"\nmodel = "bob/anything"\n', "step 's' calls"),
        (
            '[[steps]]\nname = "a"\nmodel = "double"\ninput = "$.steps.b.output"\n'
            '[[steps]]\nname = "b"\nmodel = "double"\ninput = "$.steps.a.output"\n',
            "step 'a' is on a cycle: a -> b -> a",
        ),
        (
            '[[steps]]\nname = "a"\nmodel = "double"\ninput = "$.steps.zz.output"\n',
            "step 'a' refers to unknown step 'zz'",
        ),
        (
            '[[steps]]\nname = "loud"\nmodel = "shout"\n'
            '[[steps]]\nname = "twice"\nmodel = "double"\ninput = "$.steps.loud.output"\n',
            "step 'twice': its input does not match the input schema of 'double': "
            "'$.steps.loud.output' is string where number is taken",
        ),
        (
            '[[steps]]\nname = "pair"\nmodel = "add"\ninput = { a = 1 }\n',
            "step 'pair': its input does not match the input schema of 'add': "
            "lacks the required field 'b'",
        ),
        (
            '[[steps]]\nname = "many"\nmodel = "double"\nfor_each = "$.request"\ninput = "$.item"\n'
            '[[steps]]\nname = "one"\nmodel = "double"\ninput = "$.steps.many.output"\n',
            "step 'one': its input does not match the input schema of 'double': "
            "'$.steps.many.output' is array where number is taken",
        ),
    ],
    ids=[
        "unknown-model",
        "unknown-version",
        "hidden-model",
        "cycle",
        "unknown-step",
        "schema",
        "missing-field",
        "for-each-output",
    ],
)
def test_publishing_a_wrong_pipeline_is_a_400_naming_the_step(
    people: People, tmp_path: Path, body: str, expected: str
) -> None:
    answer = publish_raw(people, "alice", pipeline_folder(tmp_path, "wrong", body), "wrong")
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_manifest"
    assert expected in error["message"]
