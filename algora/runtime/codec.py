"""Payload encoding: request bytes to the model's input, the model's result to bytes.

Standard library only. Content types: ``json`` (UTF-8 JSON), ``text`` (UTF-8), ``binary`` (raw
bytes), ``tensors`` (raw tensors described in the frame header, see :mod:`.tensors`) and, for
results only, ``void`` (the model returned ``None``; empty payload).
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import io
import json
from typing import Any

from . import tensors

__all__ = [
    "STDOUT_LIMIT",
    "CapturedOutput",
    "ResultNotSerializable",
    "decode_call",
    "decode_input",
    "encode_answer",
    "encode_result",
]

STDOUT_LIMIT = 1024 * 1024
"""Characters of ``sys.stdout`` output kept per call; the rest is dropped with a marker."""
_TRUNCATED = "\n[algora: output truncated at 1 MiB]\n"


class ResultNotSerializable(TypeError):
    """The model returned something that is not text, bytes, None or JSON-convertible."""

    code = "result_not_serializable"


class InvalidPayload(ValueError):
    """The request payload does not match its content type."""

    code = "invalid_input"


def decode_input(content_type: str, payload: bytes) -> Any:
    """The value the model receives: parsed JSON, a str, or bytes."""
    if content_type == "json":
        try:
            return json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidPayload(f"input is not valid UTF-8 JSON: {exc}") from None
        except RecursionError:
            raise InvalidPayload("input JSON is nested too deeply") from None
    if content_type == "text":
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidPayload(f"input is not valid UTF-8 text: {exc}") from None
    if content_type == "binary":
        return payload
    raise InvalidPayload(f"unknown content_type {content_type!r}")


def decode_call(spec: dict[str, Any], payload: bytes) -> Any:
    """The model's input for a ``call`` header (or a ``call_batch`` item) and its payload.

    Tensors reach the model as the one tensor itself when ``input_form`` is ``array`` (the
    default for a single tensor), else as a dict of name -> tensor.
    """
    content_type = str(spec.get("content_type", "json"))
    if content_type != "tensors":
        return decode_input(content_type, payload)
    try:
        parts = tensors.split(spec.get("tensors"), payload)
        values = {d["name"]: tensors.to_model(d, raw) for d, raw in parts}
    except tensors.TensorError as exc:
        raise InvalidPayload(str(exc)) from None
    form = spec.get("input_form") or ("array" if len(values) == 1 else "dict")
    if form == "array" and len(values) == 1:
        return next(iter(values.values()))
    return values


def encode_answer(
    value: Any, spec: dict[str, Any]
) -> tuple[str, bytes, list[dict[str, Any]] | None]:
    """``(content_type, payload, tensor descriptors)`` of a result, for the call ``spec``.

    Only a call that sent tensors gets tensors back (a JSON call keeps JSON, NumPy or not):
    an array, a dict of name -> array, a list or tuple of arrays, or a number, string or nested
    lists. Unnamed results take the call's ``output_names`` in order, else ``output_0``...
    """
    if spec.get("content_type") != "tensors":
        content_type, body = encode_result(value)
        return content_type, body, None
    names = [str(n) for n in spec.get("output_names") or ()]
    if isinstance(value, dict):
        named = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)) and value and all(map(tensors.is_array, value)):
        named = [(_output_name(names, i), v) for i, v in enumerate(value)]
    else:
        named = [(_output_name(names, 0), value)]
    descriptors, bodies = [], []
    for name, item in named:
        try:
            descriptor, raw = tensors.from_model(item, name)
        except (TypeError, ValueError) as exc:
            raise ResultNotSerializable(
                f"a model called with tensors returns arrays (or a dict or list of them), "
                f"numbers, strings or nested lists: {exc}"
            ) from None
        descriptors.append(descriptor)
        bodies.append(raw)
    return "tensors", b"".join(bodies), descriptors


def _output_name(names: list[str], index: int) -> str:
    return names[index] if index < len(names) else f"output_{index}"


def _default(value: Any) -> Any:
    """Convert what ``json`` cannot encode by itself (numpy values, dataclasses, bytes...)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return list(value)
    for method in ("tolist", "item"):  # numpy arrays and scalars, torch tensors
        convert = getattr(value, method, None)
        if callable(convert):
            return convert()
    dump = getattr(value, "model_dump", None)  # pydantic v2 models
    if callable(dump):
        return dump(mode="json")
    raise TypeError(f"object of type {type(value).__name__} is not JSON serializable")


def encode_result(value: Any) -> tuple[str, bytes]:
    """``(content_type, payload)`` for a model's return value."""
    if value is None:
        return "void", b""
    if isinstance(value, str):
        return "text", value.encode("utf-8", "replace")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "binary", bytes(value)
    try:
        text = json.dumps(value, default=_default, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise ResultNotSerializable(f"result cannot be encoded as JSON: {exc}") from None
    return "json", text.encode("ascii")


class CapturedOutput(io.TextIOBase):
    """Stands in for ``sys.stdout`` during one call; keeps at most ``limit`` characters."""

    def __init__(self, limit: int = STDOUT_LIMIT) -> None:
        super().__init__()
        self._limit = limit
        self._parts: list[str] = []
        self._size = 0
        self._truncated = False

    # io.TextIOBase.encoding is a read-only property at run time; typeshed calls it an attribute.
    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        room = self._limit - self._size
        if room > 0:
            kept = text[:room]
            self._parts.append(kept)
            self._size += len(kept)
        if len(text) > room:
            self._truncated = True
        return len(text)

    def getvalue(self) -> str:
        text = "".join(self._parts)
        return text + _TRUNCATED if self._truncated else text
