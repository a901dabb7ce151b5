"""Type hints to JSON Schema: a model's ``apply``/``predict`` hints are its input and output schema.

Standard library only. Never raises: a hint it does not understand becomes ``{}`` (anything).
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

__all__ = ["callable_schemas", "schema_of"]

_UnionType: Any = getattr(types, "UnionType", None)  # X | Y, Python 3.10+
_Annotated: Any = getattr(typing, "Annotated", None)  # Python 3.9+
_ARRAY_ORIGINS = (list, set, frozenset)
_SCALARS: dict[Any, dict[str, Any]] = {
    bool: {"type": "boolean"},
    int: {"type": "integer"},
    float: {"type": "number"},
    str: {"type": "string"},
    bytes: {"type": "string", "contentEncoding": "base64"},
    bytearray: {"type": "string", "contentEncoding": "base64"},
    type(None): {"type": "null"},
}


def schema_of(hint: Any) -> dict[str, Any]:
    """The JSON Schema of one type hint; ``{}`` when unknown or on any error."""
    try:
        return _schema(hint, frozenset())
    except Exception:
        return {}


def callable_schemas(fn: Callable[..., Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(input_schema, output_schema)`` from the first parameter and the return hint of ``fn``."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return {}, {}
    hints = _hints(fn)
    first = params[0] if params else None
    in_hint = hints.get(first.name, Any) if first is not None else Any
    return schema_of(in_hint), schema_of(hints.get("return", Any))


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:
        raw = getattr(fn, "__annotations__", None)
        if not isinstance(raw, dict):
            return {}
        # Unresolvable string annotations mean "unknown"; keep only real objects.
        return {k: v for k, v in raw.items() if not isinstance(v, str)}


def _schema(hint: Any, seen: frozenset[Any]) -> dict[str, Any]:
    if hint is None:
        return {"type": "null"}
    if hint is Any or hint is inspect.Parameter.empty or hint is object:
        return {}
    scalar = _SCALARS.get(hint) if isinstance(hint, type) else None
    if scalar is not None:
        return dict(scalar)

    origin = typing.get_origin(hint)
    args = typing.get_args(hint)

    if _Annotated is not None and origin is _Annotated:
        return _schema(args[0], seen)
    if origin is typing.Union or (_UnionType is not None and origin is _UnionType):
        return _union(args, seen)
    if origin is typing.Literal:
        return _literal(args)
    if origin in _ARRAY_ORIGINS or origin in _abc_sequences():
        out: dict[str, Any] = {"type": "array"}
        if args:
            out["items"] = _schema(args[0], seen)
        if origin in (set, frozenset):
            out["uniqueItems"] = True
        return out
    if origin is tuple:
        return _tuple(args, seen)
    if origin is dict or origin in _abc_mappings():
        out = {"type": "object"}
        if len(args) == 2:
            out["additionalProperties"] = _schema(args[1], seen)
        return out
    if hint in (list, set, frozenset, tuple):
        return {"type": "array"}
    if hint is dict:
        return {"type": "object"}

    if isinstance(hint, type):
        if hint in seen:  # recursive structure: stop here
            return {}
        if issubclass(hint, enum.Enum):
            return {"enum": [member.value for member in hint]}
        if _is_typeddict(hint):
            return _typeddict(hint, seen | {hint})
        if dataclasses.is_dataclass(hint):
            return _dataclass(hint, seen | {hint})
        for base, schema in _SCALARS.items():  # subclasses of int, str, ...
            if issubclass(hint, base):
                return dict(schema)
    return {}


def _abc_sequences() -> tuple[Any, ...]:
    import collections.abc as abc

    return (abc.Sequence, abc.MutableSequence, abc.Iterable, abc.Collection, abc.Set)


def _abc_mappings() -> tuple[Any, ...]:
    import collections.abc as abc

    return (abc.Mapping, abc.MutableMapping)


def _union(args: tuple[Any, ...], seen: frozenset[Any]) -> dict[str, Any]:
    options: list[dict[str, Any]] = []
    for arg in args:
        schema = _schema(arg, seen)
        if schema == {}:
            return {}  # Union[X, Any] accepts anything
        if schema not in options:
            options.append(schema)
    if len(options) == 1:
        return options[0]
    return {"anyOf": options}


def _literal(args: tuple[Any, ...]) -> dict[str, Any]:
    values = [a.value if isinstance(a, enum.Enum) else a for a in args]
    out: dict[str, Any] = {"enum": values}
    kinds = {type(v) for v in values}
    if len(kinds) == 1:
        kind = next(iter(kinds))
        scalar = _SCALARS.get(kind)
        if scalar is not None and "contentEncoding" not in scalar:
            out = {**scalar, "enum": values}
    return out


def _tuple(args: tuple[Any, ...], seen: frozenset[Any]) -> dict[str, Any]:
    if not args:
        return {"type": "array"}
    if len(args) == 2 and args[1] is Ellipsis:
        return {"type": "array", "items": _schema(args[0], seen)}
    if args == ((),):  # tuple[()]
        return {"type": "array", "maxItems": 0}
    items = [_schema(a, seen) for a in args]
    return {
        "type": "array",
        "prefixItems": items,
        "items": False,
        "minItems": len(items),
        "maxItems": len(items),
    }


def _is_typeddict(tp: type) -> bool:
    return issubclass(tp, dict) and hasattr(tp, "__required_keys__") and hasattr(tp, "__total__")


def _typeddict(tp: type, seen: frozenset[Any]) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(tp)
    except Exception:
        hints = {
            k: v for k, v in getattr(tp, "__annotations__", {}).items() if not isinstance(v, str)
        }
    required = getattr(tp, "__required_keys__", frozenset(hints))
    return _object(tp.__name__, hints, [k for k in hints if k in required], seen)


def _dataclass(tp: type, seen: frozenset[Any]) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(tp)
    except Exception:
        hints = {}
    props: dict[str, Any] = {}
    required: list[str] = []
    for f in dataclasses.fields(tp):
        props[f.name] = hints.get(f.name, f.type if not isinstance(f.type, str) else Any)
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if no_default:
            required.append(f.name)
    return _object(tp.__name__, props, required, seen)


def _object(
    title: str, props: dict[str, Any], required: list[str], seen: frozenset[Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "title": title,
        "properties": {name: _schema(hint, seen) for name, hint in props.items()},
    }
    if required:
        out["required"] = required
    return out
