"""``pipeline.toml``: a model made of other models' calls, with no code of its own.

A pipeline declares steps, each a call of another model (``owner/name``, or ``name`` for one
of the pipeline owner's models) at a version spec, whose input is a JSON template built from
the call's request and earlier steps' outputs. Templates hold plain JSON; a string that starts
with ``$.`` is a reference, replaced by the value it names:

- ``$.request``, ``$.request.field``, ``$.request.items[0]``: the pipeline's input;
- ``$.steps.NAME.output`` (and paths below it): what step NAME answered (null when skipped);
- ``$.item`` (and paths below it): in a step with ``for_each``, the element it is called for.

A string meant literally that starts with ``$`` is written with two (``$$.x`` is ``"$.x"``).
A step runs once every step it references has answered; steps that reference only the request
run concurrently; a step with ``for_each = "$.request.items"`` is called once per element of
that list, concurrently, and its output is the list of its answers. ``when = '$.request.mode
== "full"'`` runs a step only when the comparison
holds (``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` against a JSON literal); a skipped step's
output is null. The pipeline answers its ``output`` template (by default the last step's
output). Nothing is evaluated: references are looked up, comparisons are the six operators.
docs/pipelines.md is the guide.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from algora.errors import InvalidManifest

__all__ = [
    "MAX_ITEMS",
    "MAX_STEPS",
    "PIPELINE_NAME",
    "Condition",
    "PipelineSpec",
    "Ref",
    "StepSection",
    "holds",
    "manifest_data",
    "references",
    "render",
]

PIPELINE_NAME = "pipeline.toml"
MAX_STEPS = 64
MAX_ITEMS = 256
"""The most elements a ``for_each`` step is called for in one call of its pipeline."""
_STEP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}\Z")
_MODEL_REF = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}/)?[a-z0-9][a-z0-9_-]{0,63}\Z")
_SEGMENT = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d{1,9})\]")
_CONDITION = re.compile(r"^\s*(\$\.\S+)\s*(==|!=|<=|>=|<|>)\s*(.+?)\s*\Z")
Op = Literal["==", "!=", "<", "<=", ">", ">="]


@dataclass(frozen=True)
class Ref:
    """A reference: the request's value, a step's output or a ``for_each`` element, and the
    path below it."""

    step: str | None
    """The step whose output it names; None for the request or the element."""
    path: tuple[str | int, ...]
    item: bool = False
    """Whether it names the element a ``for_each`` step is called for."""

    @staticmethod
    def parse(text: str) -> Ref:
        """``$.request...`` or ``$.steps.NAME.output...``; ValueError saying what is wrong."""
        segments: list[str | int] = []
        position = 1  # after the "$"
        while position < len(text):
            match = _SEGMENT.match(text, position)
            if match is None:
                raise ValueError(
                    f"'{text}' is not a reference: write '$.request.a.b' or "
                    "'$.steps.NAME.output.a[0]' (names after dots, numbers in brackets)"
                )
            name, index = match.groups()
            segments.append(name if name is not None else int(index))
            position = match.end()
        if segments[:1] == ["request"]:
            return Ref(None, tuple(segments[1:]))
        if segments[:1] == ["item"]:
            return Ref(None, tuple(segments[1:]), item=True)
        if segments[:1] == ["steps"] and len(segments) >= 3 and segments[2] == "output":
            return Ref(str(segments[1]), tuple(segments[3:]))
        raise ValueError(f"'{text}' must start with '$.request', '$.steps.NAME.output' or '$.item'")

    def lookup(self, request: Any, outputs: dict[str, Any], item: Any = None) -> Any:
        """The value named; null where the path leads nowhere (a missing field, a skipped
        step)."""
        value = item if self.item else request if self.step is None else outputs.get(self.step)
        for segment in self.path:
            if isinstance(segment, int) and isinstance(value, list) and segment < len(value):
                value = value[segment]
            elif isinstance(segment, str) and isinstance(value, dict):
                value = value.get(segment)
            else:
                return None
        return value


def _is_ref(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("$.")


def references(template: Any) -> list[Ref]:
    """Every reference in a template (ValueError on a malformed one)."""
    if _is_ref(template):
        return [Ref.parse(template)]
    if isinstance(template, dict):
        return [ref for value in template.values() for ref in references(value)]
    if isinstance(template, list):
        return [ref for value in template for ref in references(value)]
    return []


def render(template: Any, request: Any, outputs: dict[str, Any], item: Any = None) -> Any:
    """The template with each reference replaced by the value it names."""
    if isinstance(template, str):
        if _is_ref(template):
            return Ref.parse(template).lookup(request, outputs, item)
        return template[1:] if template.startswith("$$") else template
    if isinstance(template, dict):
        return {key: render(value, request, outputs, item) for key, value in template.items()}
    if isinstance(template, list):
        return [render(value, request, outputs, item) for value in template]
    return template


@dataclass(frozen=True)
class Condition:
    """``when``: a reference compared with a JSON literal."""

    ref: Ref
    op: Op
    literal: Any

    @staticmethod
    def parse(text: str) -> Condition:
        match = _CONDITION.match(text)
        if match is None:
            raise ValueError(
                f"when = '{text}' must compare a reference with a JSON value, "
                "for example '$.request.mode == \"full\"' or '$.steps.a.output.score >= 0.5'"
            )
        ref_text, op, literal_text = match.groups()
        try:
            literal = json.loads(literal_text)
        except json.JSONDecodeError:
            raise ValueError(
                f"when = '{text}': {literal_text} is not a JSON value (quote strings: \"full\")"
            ) from None
        op_: Op = op  # type: ignore[assignment]  # the pattern admits only the six operators
        return Condition(Ref.parse(ref_text), op_, literal)


def holds(condition: Condition, request: Any, outputs: dict[str, Any]) -> bool:
    """Whether the comparison holds; an ordering of values that do not order is false."""
    value = condition.ref.lookup(request, outputs)
    literal = condition.literal
    if condition.op == "==":
        return bool(value == literal)
    if condition.op == "!=":
        return bool(value != literal)
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (value, literal))
    if not (numbers or (isinstance(value, str) and isinstance(literal, str))):
        return False
    if condition.op == "<":
        return bool(value < literal)
    if condition.op == "<=":
        return bool(value <= literal)
    if condition.op == ">":
        return bool(value > literal)
    return bool(value >= literal)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StepSection(_Strict):
    """One ``[[steps]]``: a call of another model."""

    name: str
    model: str
    """``owner/name``, or ``name`` for one of the pipeline owner's models."""
    version: str = "latest"
    """A version spec, as callers write them: ``1.2.3``, ``1.x``, ``latest``, an alias."""
    input: Any = "$.request"
    """The input's JSON template."""
    when: str | None = None
    """Run only when this comparison holds (else skipped: its output is null)."""
    for_each: str | None = None
    """A reference to a list: the step is called once per element (``$.item`` in its input),
    concurrently, and its output is the list of the answers."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _STEP_NAME.match(value):
            raise ValueError(
                f"step name '{value}' must be 1-64 letters, digits, '-' or '_', "
                "starting with a letter or '_'"
            )
        return value

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        if not _MODEL_REF.match(value):
            raise ValueError(f"model '{value}' must be 'owner/name' or 'name'")
        return value

    def model_ref(self, owner: str) -> tuple[str, str]:
        """(owner, name) of the step's model; a bare name is one of ``owner``'s models."""
        head, _, tail = self.model.rpartition("/")
        return (head or owner, tail)

    def condition(self) -> Condition | None:
        return Condition.parse(self.when) if self.when is not None else None

    def each(self) -> Ref | None:
        """The reference ``for_each`` names, if any."""
        if self.for_each is None:
            return None
        if not _is_ref(self.for_each):
            raise ValueError(f"for_each = '{self.for_each}' must be a reference to a list")
        return Ref.parse(self.for_each)

    def needs(self) -> set[str]:
        """The steps whose outputs this step's input, condition or ``for_each`` reference;
        ValueError for a reference that is malformed or out of place."""
        refs = references(self.input)
        condition = self.condition()
        if condition is not None:
            refs.append(condition.ref)
        each = self.each()
        if each is None and any(ref.item for ref in refs):
            raise ValueError("'$.item' is the element of a for_each: this step has none")
        if (each is not None and each.item) or (condition is not None and condition.ref.item):
            raise ValueError("for_each and when may not use '$.item': it is in the input only")
        if each is not None:
            refs.append(each)
        return {ref.step for ref in refs if ref.step is not None}


class PipelineSpec(_Strict):
    """The steps of a pipeline and the template of its answer."""

    steps: list[StepSection] = Field(min_length=1, max_length=MAX_STEPS)
    output: Any = None
    """The answer's JSON template; None: the last step's output."""

    @model_validator(mode="after")
    def _graph(self) -> PipelineSpec:
        names = [step.name for step in self.steps]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"step names must be unique: {', '.join(repeated)} repeated")
        known = set(names)
        for step in self.steps:
            try:
                needs = step.needs()
            except ValueError as error:
                raise ValueError(f"step '{step.name}': {error}") from None
            unknown = sorted(needs - known)
            if unknown:
                raise ValueError(f"step '{step.name}' refers to unknown step '{unknown[0]}'")
        try:
            refs = references(self.output)
        except ValueError as error:
            raise ValueError(f"output: {error}") from None
        if any(ref.item for ref in refs):
            raise ValueError("output may not use '$.item': it is a for_each step's input only")
        outputs = {ref.step for ref in refs if ref.step is not None}
        if outputs - known:
            raise ValueError(f"output refers to unknown step '{sorted(outputs - known)[0]}'")
        self.order()
        return self

    def order(self) -> list[StepSection]:
        """The steps, each after every step it needs; ValueError naming a step on a cycle."""
        by_name = {step.name: step for step in self.steps}
        done: list[StepSection] = []
        state: dict[str, str] = {}

        def visit(step: StepSection, path: tuple[str, ...]) -> None:
            if state.get(step.name) == "done":
                return
            if state.get(step.name) == "visiting":
                cycle = " -> ".join((*path[path.index(step.name) :], step.name))
                raise ValueError(f"step '{step.name}' is on a cycle: {cycle}")
            state[step.name] = "visiting"
            for need in sorted(step.needs()):
                visit(by_name[need], (*path, step.name))
            state[step.name] = "done"
            done.append(step)

        for step in self.steps:
            visit(step, ())
        return done

    def output_template(self) -> Any:
        return self.output if self.output is not None else f"$.steps.{self.steps[-1].name}.output"


def manifest_data(folder: Path) -> dict[str, Any]:
    """``pipeline.toml`` as the data of a manifest (``algora.modelfolder.manifest``) whose
    runtime is ``pipeline``; InvalidManifest when it is not TOML or lacks its table."""
    path = folder / PIPELINE_NAME
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InvalidManifest(f"{PIPELINE_NAME} is not UTF-8 text: save it as UTF-8") from None
    except tomllib.TOMLDecodeError as error:
        raise InvalidManifest(f"{PIPELINE_NAME} is not valid TOML: {error}") from None
    head = data.pop("pipeline", None)
    if not isinstance(head, dict):
        raise InvalidManifest(
            f"{PIPELINE_NAME} needs a [pipeline] table with the pipeline's name, "
            "and [[steps]] tables: see docs/pipelines.md"
        )
    model = {k: head.pop(k) for k in ("name", "description", "tags") if k in head}
    serving = {"timeout": head.pop("timeout")} if "timeout" in head else {}
    pipeline = {"steps": data.pop("steps", []), **head}  # what is left is the spec's (output)
    extra = {k: data.pop(k) for k in ("example",) if k in data}
    if data:
        raise InvalidManifest(
            f"{PIPELINE_NAME} has an unknown table '{next(iter(data))}': it holds [pipeline], "
            "[[steps]] and [example]"
        )
    return {
        "model": {**model, "runtime": "pipeline"},
        "serving": serving,
        "pipeline": pipeline,
        **extra,
    }
