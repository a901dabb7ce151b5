"""Payload encoding: request bytes to the model's input, the model's result to bytes.

Standard library only. Content types: ``json`` (UTF-8 JSON), ``text`` (UTF-8), ``binary`` (raw
bytes) and, for results only, ``void`` (the model returned ``None``; empty payload).
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import io
import json
from typing import Any

__all__ = [
    "STDOUT_LIMIT",
    "CapturedOutput",
    "ResultNotSerializable",
    "decode_input",
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
