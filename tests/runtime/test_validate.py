"""The worker's input check: JSON Schema compiled once, each input walked against it."""

from __future__ import annotations

from typing import Any, Literal, TypedDict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from algora.runtime.schema import schema_of
from algora.runtime.validate import InputMismatch, compile_schema


class Point(TypedDict):
    x: float
    y: float


class Request(TypedDict):
    text: str
    times: int
    points: list[Point]
    mode: Literal["fast", "exact"]
    tags: dict[str, int]
    pair: tuple[int, str]


GOOD: dict[str, Any] = {
    "text": "hi", "times": 2, "points": [{"x": 1, "y": 2.5}], "mode": "fast",
    "tags": {"a": 1}, "pair": [1, "one"],
}  # fmt: skip


def refusal(schema: Any, value: Any) -> str:
    check = compile_schema(schema)
    assert check is not None
    with pytest.raises(InputMismatch) as raised:
        check(value)
    return str(raised.value)


def test_a_typed_input_passes_and_each_mistake_is_named_where_it_is() -> None:
    schema = schema_of(Request)
    check = compile_schema(schema)
    assert check is not None
    check(GOOD)
    check({**GOOD, "times": 2.0})  # JSON's 2.0 is an integer
    assert refusal(schema, {**GOOD, "text": 5}) == "input.text must be a string, not an integer (5)"
    assert refusal(schema, {**GOOD, "times": True}).startswith("input.times must be an integer")
    assert "input.points[0].y must be a number" in refusal(
        schema, {**GOOD, "points": [{"x": 1, "y": "2"}]}
    )
    assert refusal(schema, {k: v for k, v in GOOD.items() if k != "mode"}) == (
        "input is missing the field 'mode'"
    )
    assert "must be one of 'fast', 'exact'" in refusal(schema, {**GOOD, "mode": "slow"})
    assert "input.tags.a must be an integer" in refusal(schema, {**GOOD, "tags": {"a": "1"}})
    assert "input.pair[1] must be a string" in refusal(schema, {**GOOD, "pair": [1, 2]})
    assert "at most 2 item(s)" in refusal(schema, {**GOOD, "pair": [1, "a", 3]})
    assert refusal(schema, [1]) == "input must be an object, not an array ([1])"


def test_unions_bounds_lengths_and_what_accepts_anything() -> None:
    union = schema_of(int | list[int])
    check = compile_schema(union)
    assert check is not None
    check(3), check([1, 2])
    assert refusal(union, "3") == "input must be an integer or an array, not a string ('3')"
    # of the options, the one that got furthest into the value says what is wrong
    assert refusal(union, [1, "2"]) == "input[1] must be an integer, not a string ('2')"
    assert compile_schema({}) is None and compile_schema(True) is None
    assert compile_schema(schema_of(Any)) is None
    assert compile_schema({"anyOf": [{}, {"type": "string"}]}) is None  # takes anything
    bounded = {"type": "number", "minimum": 0, "exclusiveMaximum": 1}
    assert refusal(bounded, -1) == "input must be at least 0, not -1"
    assert refusal(bounded, 1) == "input must be less than 1, not 1"
    assert "at least 2 characters" in refusal({"type": "string", "minLength": 2}, "a")
    assert "match the pattern" in refusal({"type": "string", "pattern": "^a"}, "b")
    assert refusal({"const": True}, 1) == "input must be one of True, not an integer (1)"


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=20,
    )
)
def test_any_json_value_is_taken_or_refused_by_name_never_crashes(value: Any) -> None:
    check = compile_schema(schema_of(Request))
    assert check is not None
    try:
        check(value)
    except InputMismatch as mismatch:
        assert str(mismatch).startswith("input")
