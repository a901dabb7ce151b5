"""Inputs checked against the model's input schema before the model runs.

Standard library only. :func:`compile_schema` turns a JSON Schema into a tree of small checking
functions once, when the model loads, so a call pays for walking its input and nothing else. It
knows the keywords Algora's schemas use (those from type hints, manifests and saved models):
``type``, ``properties``, ``required``, ``additionalProperties``, ``items``, ``prefixItems``,
``enum``, ``const``, ``anyOf``/``oneOf``/``allOf``, the numeric and length bounds and
``pattern``. Other keywords are not checked (the model still sees what it was sent). A failure
names where in the input it is and the rule it broke: ``input.text must be a string, not an
integer (5)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["Check", "InputMismatch", "compile_schema"]

_Checker = Callable[[Any, str], None]
Check = Callable[[Any], None]


class InputMismatch(ValueError):
    """The input does not match the model's input schema, at ``where``."""

    code = "invalid_input"

    def __init__(self, message: str, where: str = "input", expected: str | None = None) -> None:
        super().__init__(message)
        self.where = where
        self.expected = expected
        """For a value of the wrong kind: the kinds it may be."""


_NAMES = {
    bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
    dict: "an object", type(None): "null",
}  # fmt: skip


def _what(value: Any) -> str:
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return f"{_NAMES.get(type(value), type(value).__name__)} ({shown})"


def _is(kind: str, value: Any) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        if isinstance(value, float):
            return value.is_integer()
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    return True  # a type this checker does not know: not its to refuse


_ARTICLES = {
    "string": "a string", "integer": "an integer", "number": "a number",
    "boolean": "a boolean", "null": "null", "array": "an array", "object": "an object",
}  # fmt: skip


def compile_schema(schema: Any) -> Check | None:
    """A function that raises :class:`InputMismatch` for an input ``schema`` refuses; None when
    the schema accepts anything (``{}``, ``true``, or nothing this checker knows)."""
    checker = _compile(schema)
    if checker is None:
        return None

    def check(value: Any) -> None:
        checker(value, "input")

    return check


def _compile(schema: Any) -> _Checker | None:
    if schema is False:
        return _never
    if not isinstance(schema, dict):
        return None
    checks = [
        check
        for build in (_type, _enum, _bounds, _lengths, _object, _array, _combined)
        if (check := build(schema)) is not None
    ]
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]

    def all_of(value: Any, where: str) -> None:
        for check in checks:
            check(value, where)

    return all_of


def _never(value: Any, where: str) -> None:
    raise InputMismatch(f"{where} is not allowed here", where)


def _type(schema: dict[str, Any]) -> _Checker | None:
    kinds = schema.get("type")
    if kinds is None:
        return None
    wanted = [kinds] if isinstance(kinds, str) else [k for k in kinds if isinstance(k, str)]
    if not wanted:
        return None
    expected = " or ".join(_ARTICLES.get(k, k) for k in wanted)

    def check(value: Any, where: str) -> None:
        if not any(_is(kind, value) for kind in wanted):
            raise InputMismatch(f"{where} must be {expected}, not {_what(value)}", where, expected)

    return check


def _enum(schema: dict[str, Any]) -> _Checker | None:
    if "const" in schema:
        allowed = [schema["const"]]
    elif isinstance(schema.get("enum"), list):
        allowed = list(schema["enum"])
    else:
        return None
    shown = ", ".join(repr(a) for a in allowed[:10]) + (", ..." if len(allowed) > 10 else "")

    def check(value: Any, where: str) -> None:
        # equal, and of the same JSON kind: true is not 1
        if not any(value == a and type(value) is type(a) for a in allowed):
            raise InputMismatch(f"{where} must be one of {shown}, not {_what(value)}", where)

    return check


def _bounds(schema: dict[str, Any]) -> _Checker | None:
    rules = [
        (key, bound)
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
        if isinstance(bound := schema.get(key), int | float) and not isinstance(bound, bool)
    ]
    if not rules:
        return None
    phrases = {
        "minimum": "at least", "maximum": "at most",
        "exclusiveMinimum": "more than", "exclusiveMaximum": "less than",
    }  # fmt: skip

    def check(value: Any, where: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return
        for key, bound in rules:
            if not _within(key, value, bound):
                raise InputMismatch(f"{where} must be {phrases[key]} {bound}, not {value!r}", where)

    return check


def _within(key: str, value: float, bound: float) -> bool:
    if key == "minimum":
        return value >= bound
    if key == "maximum":
        return value <= bound
    if key == "exclusiveMinimum":
        return value > bound
    return value < bound


def _lengths(schema: dict[str, Any]) -> _Checker | None:
    low, high = schema.get("minLength"), schema.get("maxLength")
    pattern = schema.get("pattern")
    regex = re.compile(pattern) if isinstance(pattern, str) else None
    low_items, high_items = schema.get("minItems"), schema.get("maxItems")
    if low is high is regex is low_items is high_items is None:
        return None

    def check(value: Any, where: str) -> None:
        if isinstance(value, str):
            if isinstance(low, int) and len(value) < low:
                raise InputMismatch(f"{where} must be at least {low} characters long", where)
            if isinstance(high, int) and len(value) > high:
                raise InputMismatch(f"{where} must be at most {high} characters long", where)
            if regex is not None and regex.search(value) is None:
                raise InputMismatch(f"{where} must match the pattern {pattern!r}", where)
        elif isinstance(value, list):
            if isinstance(low_items, int) and len(value) < low_items:
                raise InputMismatch(f"{where} must have at least {low_items} item(s)", where)
            if isinstance(high_items, int) and len(value) > high_items:
                raise InputMismatch(f"{where} must have at most {high_items} item(s)", where)

    return check


def _object(schema: dict[str, Any]) -> _Checker | None:
    raw = schema.get("properties")
    properties = raw if isinstance(raw, dict) else {}
    fields = {name: c for name, sub in properties.items() if (c := _compile(sub)) is not None}
    required = [name for name in schema.get("required", ()) if isinstance(name, str)]
    extra = schema.get("additionalProperties")
    others = _compile(extra) if extra is not None else None
    if not fields and not required and others is None:
        return None

    def check(value: Any, where: str) -> None:
        if not isinstance(value, dict):
            return
        for name in required:
            if name not in value:
                raise InputMismatch(f"{where} is missing the field {name!r}", where)
        for name, item in value.items():
            field = fields.get(name)
            if field is not None:
                field(item, f"{where}.{name}")
            elif others is not None and name not in properties:
                others(item, f"{where}.{name}")

    return check


def _array(schema: dict[str, Any]) -> _Checker | None:
    raw = schema.get("prefixItems")
    prefix = [_compile(sub) for sub in raw] if isinstance(raw, list) else []
    items = schema.get("items")
    rest = _compile(items) if items is not None else None
    if not any(prefix) and rest is None:
        return None

    def check(value: Any, where: str) -> None:
        if not isinstance(value, list):
            return
        for index, item in enumerate(value):
            each = prefix[index] if index < len(prefix) else rest
            if each is not None:
                each(item, f"{where}[{index}]")

    return check


def _combined(schema: dict[str, Any]) -> _Checker | None:
    every = [c for sub in schema.get("allOf", ()) if (c := _compile(sub)) is not None]
    options_raw = schema.get("anyOf", schema.get("oneOf"))
    options = [_compile(sub) for sub in options_raw] if isinstance(options_raw, list) else []
    # an option that takes anything makes anyOf accept everything
    chosen = [] if any(o is None for o in options) else [o for o in options if o is not None]
    if not every and not chosen:
        return None

    def check(value: Any, where: str) -> None:
        for part in every:
            part(value, where)
        if not chosen:
            return
        failures = []
        for option in chosen:
            try:
                option(value, where)
                return
            except InputMismatch as mismatch:
                failures.append(mismatch)
        raise _closest(failures, value, where)

    return check


def _closest(failures: list[InputMismatch], value: Any, where: str) -> InputMismatch:
    """What to say when no option of an anyOf takes the value: the failure that got furthest
    into the value (the option meant), or, when none got past the value's kind, the kinds."""
    kinds = [f.expected for f in failures if f.where == where and f.expected is not None]
    if len(kinds) == len(failures):
        expected = " or ".join(dict.fromkeys(kinds))
        return InputMismatch(f"{where} must be {expected}, not {_what(value)}", where, expected)
    past_kind = [f for f in failures if not (f.where == where and f.expected is not None)]
    return max(past_kind, key=lambda f: len(f.where))
