"""Frames: the one wire format between the gateway and a worker (see docs/protocol.md).

A frame is a 16-byte prefix ``struct.pack(">4sIQ", b"ALG1", header_len, payload_len)``, then
``header_len`` bytes of UTF-8 JSON (always an object), then ``payload_len`` raw bytes.

Standard library only: the gateway imports this module too, and the worker runs it with the
model environment's interpreter.
"""

from __future__ import annotations

import json
import os
import struct
from typing import IO, Any

__all__ = [
    "MAGIC",
    "MAX_HEADER",
    "MAX_PAYLOAD",
    "PREFIX",
    "PROTOCOL_VERSION",
    "FrameError",
    "decode_frame",
    "decode_header",
    "decode_prefix",
    "encode_frame",
    "read_frame",
    "write_frame",
]

MAGIC = b"ALG1"
PREFIX = struct.Struct(">4sIQ")
PROTOCOL_VERSION = 1
MAX_HEADER = 16 * 1024 * 1024
"""Largest header accepted, in bytes."""
MAX_PAYLOAD = 4 * 1024 * 1024 * 1024
"""Largest payload accepted, in bytes (a sanity bound: the gateway caps requests far lower)."""


class FrameError(ValueError):
    """The byte stream is not a valid frame; the connection cannot be trusted any more."""


def encode_frame(header: dict[str, Any], payload: bytes = b"") -> bytes:
    """The whole frame as one ``bytes`` object, so that it can be written with one write."""
    head = json.dumps(header, separators=(",", ":")).encode("ascii")
    if len(head) > MAX_HEADER:
        raise FrameError(f"header of {len(head)} bytes exceeds {MAX_HEADER}")
    return b"".join((PREFIX.pack(MAGIC, len(head), len(payload)), head, payload))


def decode_prefix(prefix: bytes) -> tuple[int, int]:
    """``(header_len, payload_len)`` from the 16-byte prefix; raise FrameError when invalid."""
    if len(prefix) != PREFIX.size:
        raise FrameError(f"frame prefix must be {PREFIX.size} bytes, got {len(prefix)}")
    magic, header_len, payload_len = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise FrameError(f"bad frame magic {magic!r}")
    if header_len > MAX_HEADER:
        raise FrameError(f"header of {header_len} bytes exceeds {MAX_HEADER}")
    if payload_len > MAX_PAYLOAD:
        raise FrameError(f"payload of {payload_len} bytes exceeds {MAX_PAYLOAD}")
    return header_len, payload_len


def decode_header(raw: bytes) -> dict[str, Any]:
    """Parse a header; it must be a UTF-8 JSON object."""
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FrameError(f"frame header is not UTF-8 JSON: {exc}") from None
    except RecursionError:  # a worker runs untrusted code: a hostile header must not escape
        raise FrameError("frame header is nested too deeply") from None
    if not isinstance(header, dict):
        raise FrameError("frame header must be a JSON object")
    return header


def decode_frame(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Decode exactly one complete frame held in ``data``."""
    header_len, payload_len = decode_prefix(data[: PREFIX.size])
    end = PREFIX.size + header_len + payload_len
    if len(data) != end:
        raise FrameError(f"frame needs {end} bytes, got {len(data)}")
    header = decode_header(data[PREFIX.size : PREFIX.size + header_len])
    return header, data[PREFIX.size + header_len :]


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if data is None or len(data) != size:
        got = 0 if data is None else len(data)
        raise EOFError(f"stream ended after {got} of {size} bytes")
    return data


def read_frame(stream: IO[bytes]) -> tuple[dict[str, Any], bytes] | None:
    """Read one frame from a blocking buffered stream; ``None`` on a clean end of stream.

    Raise EOFError when the stream ends inside a frame, FrameError when it is not a frame.
    """
    prefix = stream.read(PREFIX.size)
    if not prefix:
        return None
    if len(prefix) != PREFIX.size:
        prefix += _read_exactly(stream, PREFIX.size - len(prefix))
    header_len, payload_len = decode_prefix(prefix)
    header = decode_header(_read_exactly(stream, header_len))
    payload = _read_exactly(stream, payload_len) if payload_len else b""
    return header, payload


def write_frame(fd: int, header: dict[str, Any], payload: bytes = b"") -> None:
    """Write one frame to a blocking file descriptor (one write call unless the OS splits it)."""
    view = memoryview(encode_frame(header, payload))
    while view:
        written = os.write(fd, view)
        view = view[written:]
