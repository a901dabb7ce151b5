"""Publishing a pipeline: its steps checked against the registry, its spec stored as a version.

A pipeline is checked while its publisher waits, with the publisher's rights: every step's
model and version must resolve to a ready version the publisher may call, and where a step's
input comes from another step's output and both versions declare schemas, the two must agree.
Each failure is a 400 naming the step. A pipeline has no environment, no build command and no
worker: its version is ready as soon as its files are stored.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from algora.auth.principals import Caller
from algora.db.tables import Version
from algora.errors import AlgoraError, InvalidManifest
from algora.modelfolder.manifest import Manifest
from algora.modelfolder.packing import tree_hash
from algora.modelfolder.pipeline import PIPELINE_NAME, Ref, StepSection
from algora.publishing.archive import move_into_place
from algora.registry.service import Registry
from algora.registry.specs import parse_spec
from algora.store.base import BlobStore

__all__ = ["check_pipeline", "schema_mismatch", "stored_pipeline"]


def check_pipeline(registry: Registry, caller: Caller, owner: str, manifest: Manifest) -> None:
    """Raise InvalidManifest (400) naming the first step whose model or version the publisher
    cannot call, or whose input does not match its model's schema (blocking)."""
    spec = manifest.pipeline
    if spec is None:
        return
    versions: dict[str, Version] = {}
    for step in spec.order():
        versions[step.name] = _resolve(registry, caller, owner, step)
    outputs = {step.name: _output_schema(step, versions[step.name]) for step in spec.steps}
    for step in spec.steps:
        schema = versions[step.name].input_schema
        problem = schema_mismatch(step.input, schema, outputs) if schema else None
        if problem is not None:
            raise InvalidManifest(
                f"{PIPELINE_NAME}: step '{step.name}': its input does not match the input "
                f"schema of '{step.model}': {problem}",
                details={"step": step.name},
            )


def _output_schema(step: StepSection, version: Version) -> dict[str, Any] | None:
    """What a step outputs: its model's answer, or a list of them for a ``for_each`` step."""
    schema = version.output_schema
    return {"type": "array", "items": schema} if step.for_each and schema else schema


def _resolve(registry: Registry, caller: Caller, owner: str, step: StepSection) -> Version:
    model_owner, name = step.model_ref(owner)
    try:
        return registry.resolve(model_owner, name, parse_spec(step.version), caller)[1]
    except AlgoraError as error:
        if error.status >= 500:
            raise
        raise InvalidManifest(
            f"{PIPELINE_NAME}: step '{step.name}' calls '{model_owner}/{name}' "
            f"{step.version}, which cannot be called: {error.message}",
            details={"step": step.name, "model": f"{model_owner}/{name}"},
        ) from None


def stored_pipeline(source: Path, archive: Path, store: BlobStore, sources: Path) -> dict[str, Any]:
    """A pipeline's source stored as a version's (``Built``'s fields): no environment."""
    content_hash = hashlib.sha256(f"{tree_hash(source)}\npipeline".encode()).hexdigest()
    archive_hash = store.put_file(archive)
    move_into_place(source, sources / content_hash)
    return {
        "content_hash": content_hash,
        "archive_hash": archive_hash,
        "environment_hash": None,
        "input_schema": None,
        "output_schema": None,
        "policy": {},
    }


_JSON_TYPES: dict[type, str] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}


def _types(schema: dict[str, Any] | None) -> set[str] | None:
    """The JSON types a schema admits, or None when it does not say plainly."""
    if not schema or "type" not in schema:
        return None
    declared = schema["type"]
    types = set(declared) if isinstance(declared, list) else {declared}
    return types | {"number"} if "integer" in types else types


def _agree(made: set[str], taken: set[str]) -> bool:
    if "number" in taken:
        taken = taken | {"integer"}
    return bool(made & taken)


def _describe(schema: dict[str, Any] | None) -> str:
    types = _types(schema)
    if not types:
        return "?"
    return " or ".join(sorted(types - {"integer"} if "number" in types else types))


def _below(schema: dict[str, Any] | None, path: tuple[str | int, ...]) -> dict[str, Any] | None:
    """The part of an output schema a reference's path leads to, where the schema says."""
    for segment in path:
        if schema is None:
            return None
        if isinstance(segment, int):
            items = schema.get("items")
            schema = items if isinstance(items, dict) else None
        else:
            properties = schema.get("properties")
            found = properties.get(segment) if isinstance(properties, dict) else None
            schema = found if isinstance(found, dict) else None
    return schema


def schema_mismatch(
    template: Any, schema: dict[str, Any] | None, outputs: dict[str, dict[str, Any] | None]
) -> str | None:
    """What in ``template`` cannot match ``schema`` (a step's input schema), given the steps'
    output schemas; None when nothing declared disagrees. Only what both sides declare is
    compared: types, an object's required fields, an array's items."""
    taken = _types(schema)
    if schema is None or taken is None:
        return None
    if isinstance(template, str) and template.startswith("$."):
        ref = Ref.parse(template)
        if ref.step is None:
            return None  # the request: known only when the pipeline is called
        made_schema = _below(outputs.get(ref.step), ref.path)
        made = _types(made_schema)
        if made is not None and not _agree(made, taken):
            return f"'{template}' is {_describe(made_schema)} where {_describe(schema)} is taken"
        return None
    if isinstance(template, dict) and "object" in taken:
        properties = schema.get("properties") or {}
        missing = [field for field in schema.get("required", []) if field not in template]
        if missing:
            return f"lacks the required field '{missing[0]}'"
        for key, value in template.items():
            problem = schema_mismatch(value, properties.get(key), outputs)
            if problem is not None:
                return f"field '{key}': {problem}"
        return None
    if isinstance(template, list) and "array" in taken:
        items = schema.get("items")
        for index, value in enumerate(template):
            problem = schema_mismatch(value, items if isinstance(items, dict) else None, outputs)
            if problem is not None:
                return f"item {index}: {problem}"
        return None
    made_literal = _JSON_TYPES.get(type(template))
    if isinstance(template, str) and template.startswith("$$"):
        made_literal = "string"
    if made_literal is not None and not _agree({made_literal}, taken):
        return f"{made_literal} {template!r} where {_describe(schema)} is taken"
    return None
