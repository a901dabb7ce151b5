"""``pipeline.toml``: references, templates, conditions, the step graph, and schema checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from algora.errors import InvalidManifest
from algora.modelfolder.layouts import find_manifest, has_manifest
from algora.modelfolder.pipeline import Condition, PipelineSpec, Ref, holds, render
from algora.publishing.pipelines import schema_mismatch

REQUEST = {"x": 3, "items": [{"v": 1}, {"v": 2}], "mode": "full"}
OUTPUTS = {"a": {"score": 0.7, "labels": ["cat", "dog"]}, "b": 5}


@pytest.mark.parametrize(
    ("text", "step", "path"),
    [
        ("$.request", None, ()),
        ("$.request.items[1].v", None, ("items", 1, "v")),
        ("$.steps.a.output", "a", ()),
        ("$.steps.a.output.labels[0]", "a", ("labels", 0)),
    ],
)
def test_references_name_the_request_or_a_step_output(
    text: str, step: str | None, path: tuple[Any, ...]
) -> None:
    assert Ref.parse(text) == Ref(step, path)


def test_the_item_reference_names_a_for_each_element() -> None:
    assert Ref.parse("$.item.name") == Ref(None, ("name",), item=True)
    assert render({"n": "$.item.n", "x": "$.request.x"}, REQUEST, {}, {"n": 7}) == {"n": 7, "x": 3}


@pytest.mark.parametrize(
    "text", ["$.response", "$.steps.a", "$.steps.a.input", "$.request..x", "$.request[x]", "$."]
)
def test_malformed_references_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="request"):
        Ref.parse(text)


def test_templates_are_json_with_references_replaced() -> None:
    template = {
        "first": "$.request.items[0].v",
        "label": "$.steps.a.output.labels[1]",
        "both": ["$.steps.b.output", 1, True, None],
        "literal": "$$.request",
        "plain": "text",
        "missing": "$.request.items[7].v",
        "skipped": "$.steps.c.output.z",
    }
    assert render(template, REQUEST, OUTPUTS) == {
        "first": 1,
        "label": "dog",
        "both": [5, 1, True, None],
        "literal": "$.request",
        "plain": "text",
        "missing": None,
        "skipped": None,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('$.request.mode == "full"', True),
        ('$.request.mode != "full"', False),
        ("$.steps.a.output.score >= 0.5", True),
        ("$.steps.a.output.score < 0.5", False),
        ("$.steps.b.output > 4", True),
        ("$.steps.b.output <= 4", False),
        ("$.request.absent == null", True),
        ('$.request.x > "2"', False),  # a number and a string do not order
        ("$.steps.c.output == null", True),  # a skipped step's output
    ],
)
def test_conditions_compare_a_reference_with_a_json_value(text: str, expected: bool) -> None:
    assert holds(Condition.parse(text), REQUEST, OUTPUTS) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("$.request.mode == full", "not a JSON value"),
        ("$.request.mode", "must compare"),
        ("x == 1", "must compare"),
        ("$.request.mode =~ 1", "must compare"),
    ],
)
def test_malformed_conditions_say_how_to_write_them(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Condition.parse(text)


def spec(*steps: dict[str, Any], output: Any = None) -> PipelineSpec:
    return PipelineSpec.model_validate({"steps": list(steps), "output": output})


def test_steps_run_after_what_they_reference() -> None:
    pipeline = spec(
        {"name": "merge", "model": "m", "input": ["$.steps.left.output", "$.steps.right.output"]},
        {"name": "left", "model": "m"},
        {"name": "right", "model": "o/m", "when": "$.steps.left.output != null"},
    )
    assert [s.name for s in pipeline.order()] == ["left", "right", "merge"]
    each = spec(
        {"name": "each", "model": "m", "for_each": "$.steps.list.output", "input": "$.item"},
        {"name": "list", "model": "m"},
    )
    assert [s.name for s in each.order()] == ["list", "each"]
    assert pipeline.steps[2].model_ref("alice") == ("o", "m")
    assert pipeline.steps[1].model_ref("alice") == ("alice", "m")
    assert pipeline.output_template() == "$.steps.right.output"


@pytest.mark.parametrize(
    ("steps", "output", "message"),
    [
        ([{"name": "a", "model": "m"}, {"name": "a", "model": "m"}], None, "a repeated"),
        ([{"name": "a", "model": "m", "input": "$.steps.b.output"}], None, "unknown step 'b'"),
        ([{"name": "a", "model": "m", "input": "$.steps.a.output"}], None, "cycle: a -> a"),
        ([{"name": "a", "model": "m", "when": "$.steps.q.output == 1"}], None, "unknown step"),
        ([{"name": "a", "model": "m", "input": "$.nope"}], None, "step 'a':"),
        ([{"name": "a", "model": "m"}], "$.steps.z.output", "output refers to unknown step"),
        ([{"name": "a", "model": "Bad Name"}], None, "must be 'owner/name'"),
        ([{"name": "1a", "model": "m"}], None, "step name '1a'"),
        ([], None, "at least 1"),
        ([{"name": "a", "model": "m", "input": "$.item"}], None, "this step has none"),
        ([{"name": "a", "model": "m", "for_each": "[1, 2]"}], None, "reference to a list"),
        ([{"name": "a", "model": "m", "for_each": "$.item"}], None, "input only"),
        ([{"name": "a", "model": "m", "for_each": "$.steps.b.output"}], None, "unknown step"),
        ([{"name": "a", "model": "m"}], {"x": "$.item"}, "output may not use"),
    ],
)
def test_a_wrong_graph_is_refused_naming_the_step(
    steps: list[dict[str, Any]], output: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        spec(*steps, output=output)


def write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pipeline.toml").write_text(text, encoding="utf-8")
    return folder


def test_a_pipeline_folder_is_a_model_folder_with_runtime_pipeline(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "p",
        '[pipeline]\nname = "p"\ndescription = "d"\ntags = ["t"]\ntimeout = 5\n'
        '[pipeline.output]\nanswer = "$.steps.a.output"\n'
        '[[steps]]\nname = "a"\nmodel = "alice/m"\nversion = "1.x"\n'
        "[example]\ninput = 3\n",
    )
    assert has_manifest(folder)
    found = find_manifest(folder)
    manifest = found.manifest
    assert found.origin == "pipeline.toml"
    assert (manifest.model.name, manifest.model.runtime, manifest.model.tags) == (
        "p",
        "pipeline",
        ["t"],
    )
    assert manifest.serving.timeout == 5
    assert manifest.example.input == 3
    assert manifest.pipeline is not None
    assert manifest.pipeline.output == {"answer": "$.steps.a.output"}
    assert manifest.pipeline.steps[0].version == "1.x"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[pipeline\n", "not valid TOML"),
        ('[[steps]]\nname = "a"\nmodel = "m"\n', r"needs a \[pipeline\] table"),
        ('[pipeline]\nname = "p"\n[[steps]]\nname = "a"\nmodel = "m"\n[model]\n', "unknown table"),
        ('[pipeline]\nname = "p"\n', "pipeline.steps"),
        ('[pipeline]\nname = "p"\ncolour = 1\n[[steps]]\nname = "a"\nmodel = "m"\n', "colour"),
        ('[pipeline]\nname = "P"\n[[steps]]\nname = "a"\nmodel = "m"\n', "model.name"),
    ],
)
def test_a_wrong_pipeline_toml_says_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InvalidManifest, match=message):
        find_manifest(write(tmp_path / "p", text))


def test_algora_toml_cannot_claim_the_pipeline_runtime(tmp_path: Path) -> None:
    (tmp_path / "algora.toml").write_text('[model]\nname = "m"\nruntime = "pipeline"\n')
    with pytest.raises(InvalidManifest, match=r"pipeline\.toml"):
        find_manifest(tmp_path)


NUMBERS = {"type": "array", "items": {"type": "number"}}
PAIR = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
    "required": ["a", "b"],
}


@pytest.mark.parametrize(
    ("template", "schema", "outputs", "problem"),
    [
        ("$.steps.s.output", NUMBERS, {"s": {"type": "array"}}, None),
        ("$.steps.s.output", NUMBERS, {"s": {"type": "string"}}, "is string where array"),
        ("$.steps.s.output.n", {"type": "number"}, {"s": PAIR}, None),  # undeclared: not checked
        ("$.steps.s.output.a", {"type": "number"}, {"s": PAIR}, None),  # integer is a number
        ("$.steps.s.output.b", {"type": "number"}, {"s": PAIR}, "'$.steps.s.output.b' is string"),
        ("$.steps.s.output", NUMBERS, {"s": None}, None),  # no output schema: not checked
        ("$.request", NUMBERS, {}, None),
        ({"a": 1}, PAIR, {}, "lacks the required field 'b'"),
        ({"a": 1, "b": 2}, PAIR, {}, "field 'b': integer 2 where string"),
        ({"a": "$.steps.s.output", "b": "x"}, PAIR, {"s": {"type": "integer"}}, None),
        ([1, "two"], NUMBERS, {}, "item 1: string 'two'"),
        ("$$.x", {"type": "string"}, {}, None),
        ("text", {"anyOf": [{"type": "integer"}]}, {}, None),  # not plain: not checked
    ],
)
def test_step_inputs_are_checked_against_declared_schemas(
    template: Any, schema: dict[str, Any], outputs: dict[str, Any], problem: str | None
) -> None:
    found = schema_mismatch(template, schema, outputs)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
