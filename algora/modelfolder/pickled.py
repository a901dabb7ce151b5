"""The scikit-learn version a pickle or joblib file records, read from its bytes.

scikit-learn adds ``_sklearn_version`` to the pickled state of every estimator, and reads
pickles reliably only with that same version. :func:`recorded_sklearn_version` finds the first
such entry in the stream (decompressed as joblib compressed it) and reads the string that
follows it, opcode by opcode: nothing is unpickled. The environment of a saved model then pins
that version (``algora.modelfolder.saved.requirements_for``), unless the folder's own
``requirements.txt`` says otherwise.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

__all__ = ["recorded_sklearn_version"]

_KEY = b"_sklearn_version"
_CHUNK = 1 << 20
_MAX_SCAN = 256 * 1024 * 1024
"""Decompressed bytes searched at most for the first estimator's state."""
_AFTER = 64
_VERSION = re.compile(r"^\d{1,3}\.\d{1,3}(?:\.\d{1,3})?(?:(?:rc|a|b|\.post|\.dev)\d{1,3})?\Z")
# Opcodes that may stand between the key and its value: MEMOIZE, BINPUT n, LONG_BINPUT n.
_MEMO = {0x94: 0, ord("q"): 1, ord("r"): 4}


def recorded_sklearn_version(path: Path) -> str | None:
    """The version in the first ``_sklearn_version`` entry of ``path``, or None."""
    window = b""
    scanned = 0
    try:
        for chunk in _chunks(path):
            window += chunk
            scanned += len(chunk)
            at = window.find(_KEY)
            if at >= 0 and len(window) - at >= len(_KEY) + _AFTER:
                return _value(window[at + len(_KEY) : at + len(_KEY) + _AFTER])
            if at < 0:
                window = window[-(len(_KEY) + _AFTER) :]
            if scanned > _MAX_SCAN:
                return None
        at = window.find(_KEY)
        return _value(window[at + len(_KEY) :]) if at >= 0 else None
    except (OSError, EOFError, zlib.error, lzma.LZMAError):
        return None


def _value(data: bytes) -> str | None:
    """The version string pickled at the start of ``data`` (after the key's own memo)."""
    at = 0
    while at < len(data) and data[at] in _MEMO:
        at += 1 + _MEMO[data[at]]
    if at >= len(data):
        return None
    opcode = data[at]
    if opcode == 0x8C:  # SHORT_BINUNICODE: one byte of length
        length, start = data[at + 1] if at + 1 < len(data) else 0, at + 2
    elif opcode == ord("X"):  # BINUNICODE: four bytes, little-endian
        length, start = int.from_bytes(data[at + 1 : at + 5], "little"), at + 5
    else:
        return None
    try:
        text = data[start : start + length].decode("ascii")
    except UnicodeDecodeError:
        return None
    return text if len(text) == length and _VERSION.match(text) else None


def _chunks(path: Path) -> Iterator[bytes]:
    """The file's bytes, decompressed when joblib compressed them (zlib, gzip, bz2, xz)."""
    with path.open("rb") as raw:
        head = raw.read(6)
    if len(head) >= 2 and head[0] == 0x78 and (head[0] << 8 | head[1]) % 31 == 0:
        decompressor = zlib.decompressobj()
        with path.open("rb") as raw:
            while chunk := raw.read(_CHUNK):
                while chunk:  # a bounded piece at a time: a small file may expand a lot
                    yield decompressor.decompress(chunk, _CHUNK)
                    chunk = decompressor.unconsumed_tail
        return
    opener = _OPENERS.get(head[:2], _plain)
    with opener(path) as stream:
        while chunk := stream.read(_CHUNK):
            yield chunk


def _plain(path: Path) -> IO[bytes]:
    return path.open("rb")


def _gzip(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb")  # type: ignore[return-value]  # GzipFile reads as IO[bytes]


def _bz2(path: Path) -> IO[bytes]:
    return bz2.open(path, "rb")


def _xz(path: Path) -> IO[bytes]:
    return lzma.open(path, "rb")


_OPENERS: dict[bytes, Callable[[Path], IO[bytes]]] = {
    b"\x1f\x8b": _gzip,
    b"BZ": _bz2,
    b"\xfd7": _xz,
}
