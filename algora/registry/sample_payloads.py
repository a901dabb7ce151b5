"""A sampled payload as it is stored: named JSON fields redacted at any depth, then cut at the
rule's byte cap (and marked so). Runs in the sampler's writer thread, never on the call path."""

from __future__ import annotations

import base64
import json
from collections.abc import Collection
from typing import Any

__all__ = ["REDACTED", "redact", "stored_payload"]

REDACTED = "[redacted]"


def redact(value: Any, names: Collection[str]) -> Any:
    """``value`` with every object member named in ``names`` replaced, at any depth."""
    if isinstance(value, dict):
        return {
            key: REDACTED if key in names else redact(member, names)
            for key, member in value.items()
        }
    if isinstance(value, list):
        return [redact(member, names) for member in value]
    return value


def stored_payload(
    content_type: str, payload: bytes, max_bytes: int, names: Collection[str]
) -> dict[str, Any]:
    """What the sample keeps of one input or output: its content type and size, and its data
    as JSON (``encoding`` json), text, or base64 (binary, tensors), redacted and cut to
    ``max_bytes``. A JSON payload that does not parse is withheld when fields are to be
    redacted (they could not be found in it)."""
    stored: dict[str, Any] = {"content_type": content_type, "bytes": len(payload)}
    if content_type == "json" or (content_type == "text" and names):
        try:
            value = redact(json.loads(payload), names)
        except ValueError:
            if names:
                return {**stored, "encoding": "withheld", "data": None, "truncated": False}
        else:
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
            encoded = text.encode()
            if len(encoded) <= max_bytes:
                return {**stored, "encoding": "json", "data": value, "truncated": False}
            cut = encoded[:max_bytes].decode("utf-8", "ignore")
            return {**stored, "encoding": "text", "data": cut, "truncated": True}
    truncated = len(payload) > max_bytes
    kept = payload[:max_bytes]
    if content_type == "text":
        data = kept.decode("utf-8", "replace" if not truncated else "ignore")
        return {**stored, "encoding": "text", "data": data, "truncated": truncated}
    data = base64.b64encode(kept).decode("ascii")
    return {**stored, "encoding": "base64", "data": data, "truncated": truncated}
