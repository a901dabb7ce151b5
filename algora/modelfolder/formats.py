"""Saved-model formats, recognised from a file's content (never from its name).

:func:`detect` reads a file's bytes and structure, and nothing in it is run or unpickled: a
pickle's opcodes are walked with :mod:`pickletools` (which only decodes them), an ONNX model's
protobuf wire format is walked field by field. Standard library only: the SDK, the CLI and the
gateway all detect with it, and agree.

======================  =================================================  ==========
format                  how it is recognised                               safe
======================  =================================================  ==========
``pickle``              protocol 2+ opcodes ending in STOP, naming a class no (code)
``joblib``              a pickle naming joblib's array wrapper, raw or in  no (code)
                        zlib, gzip, bz2 or xz
``skops``               a zip whose ``schema.json`` is skops' schema       yes
``xgboost-json``        a JSON object with ``learner`` and ``version``     yes
``xgboost-ubj``         UBJSON whose first key is ``learner``              yes
``lightgbm``            LightGBM's text model (``tree\\nversion=v...``)     yes
``onnx``                a protobuf ``ModelProto`` with ``ir_version`` and  yes
                        a ``graph`` whose fields parse
``torchscript``         ``torch.jit.save``'s zip: ``code/``,               no (code)
                        ``constants.pkl`` and ``data.pkl``
``torch-state-dict``    ``torch.save(model.state_dict())``'s zip: a        no (code)
                        ``data.pkl`` of tensors only, no ``code/``
``sentence-             a folder's ``modules.json`` of                     yes
transformers``          sentence_transformers modules, with safetensors
``mlflow``              a folder's ``MLmodel`` with a ``python_function``  no (code)
                        flavor naming its ``loader_module``
======================  =================================================  ==========

Pickle-based formats are code: they are loaded only in the model's sandboxed worker.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import mmap
import pickletools
import posixpath
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from algora.modelfolder.structures import (
    is_mlflow_model,
    is_sentence_transformers,
    small_json,
    torch_archive_kind,
)

__all__ = [
    "FOLDER_FORMATS",
    "FORMATS",
    "SAFE_FORMATS",
    "ModelFormat",
    "detect",
    "inside",
    "onnx_external_files",
]


@dataclass(frozen=True)
class ModelFormat:
    """One saved-model format the platform serves."""

    name: str
    title: str
    safe: bool
    """Loading it runs no code of the file's (no unpickling)."""
    requirements: tuple[str, ...]
    """The worker environment's requirements when the model folder names none."""


_NUMPY = "numpy>=1.26,<3"
_SKLEARN = "scikit-learn>=1.5,<2"
_XGBOOST = "xgboost-cpu>=2.1,<4"  # the CPU build: no CUDA libraries in the environment
# Exactly the release the platform's index serves as a CPU build: a range would let a resolver
# take a newer release, and with it several GB of CUDA libraries.
_TORCH = "torch==2.13.0"

FORMATS: dict[str, ModelFormat] = {
    f.name: f
    for f in (
        ModelFormat("joblib", "scikit-learn (joblib)", False, (_SKLEARN, _NUMPY)),
        ModelFormat("pickle", "scikit-learn (pickle)", False, (_SKLEARN, _NUMPY)),
        ModelFormat(
            "skops",
            "scikit-learn (skops)",
            True,
            ("skops>=0.11,<1", _SKLEARN, _NUMPY),
        ),
        ModelFormat("xgboost-json", "XGBoost (JSON)", True, (_XGBOOST, _NUMPY)),
        ModelFormat("xgboost-ubj", "XGBoost (UBJ)", True, (_XGBOOST, _NUMPY)),
        ModelFormat("lightgbm", "LightGBM (text model)", True, ("lightgbm>=4.3,<5", _NUMPY)),
        ModelFormat("onnx", "ONNX", True, ("onnxruntime>=1.18,<2", _NUMPY)),
        ModelFormat("torchscript", "PyTorch TorchScript", False, (_TORCH,)),
        ModelFormat("torch-state-dict", "PyTorch state_dict", False, (_TORCH,)),
        ModelFormat(
            "sentence-transformers",
            "sentence embeddings (Hugging Face, sentence-transformers)",
            True,
            ("sentence-transformers>=3,<7", _TORCH),
        ),
        # Its own requirements.txt or conda.yaml usually name what it needs (saved.py).
        ModelFormat("mlflow", "MLflow model (pyfunc)", False, ("mlflow-skinny>=2.9,<4",)),
    )
}
"""Every format :func:`detect` recognises, by name."""

SAFE_FORMATS = frozenset(name for name, f in FORMATS.items() if f.safe)
FOLDER_FORMATS = frozenset({"sentence-transformers", "mlflow"})
"""Formats whose file stands for its whole folder: other models inside are its parts."""

_HEAD = 64 * 1024
_MAX_PICKLE_SCAN = 64 * 1024 * 1024
"""Opcodes of a pickle walked at most: past this, a stream valid so far is taken as one."""
_MAX_JSON = 512 * 1024 * 1024
_CONSTRUCTS = frozenset({"REDUCE", "NEWOBJ", "NEWOBJ_EX", "OBJ", "INST", "BUILD"})
"""Opcodes that make an object of a class: a model's pickle has them, plain data has not."""
_JOBLIB_WRAPPERS = frozenset({"NumpyArrayWrapper", "ZNDArrayWrapper", "NDArrayWrapper"})


def detect(path: Path) -> str | None:
    """The name of the saved-model format of the file ``path``, or None when it is none."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_HEAD)
            if not head:
                return None
            if head.startswith(b"tree\nversion=v") and b"\nnum_class=" in head:
                return "lightgbm"
            if head.startswith(b"PK\x03\x04"):
                return _zip_kind(path)
            if head.lstrip()[:1] == b"{" and _is_xgboost_json(path):
                return "xgboost-json"
            if head.lstrip()[:1] == b"[" and is_sentence_transformers(path):
                return "sentence-transformers"
            if (head.startswith(b"flavors:") or b"\nflavors:" in head) and is_mlflow_model(path):
                return "mlflow"
            if _is_xgboost_ubj(path, head):
                return "xgboost-ubj"
            pickled = _pickle_kind(path, head)
            if pickled is not None:
                return pickled
            return "onnx" if _is_onnx(handle) else None
    except Exception:  # hostile bytes: whatever fails to read them is no model
        return None


# -- pickle and joblib --------------------------------------------------------------------------
def _pickle_kind(path: Path, head: bytes) -> str | None:
    if head[:1] == b"\x80":
        return _walk_pickle(_opened(path, None))
    for magic, kind in ((b"\x1f\x8b", "gz"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz")):
        if head.startswith(magic):
            return "joblib" if _walk_pickle(_opened(path, kind)) is not None else None
    if len(head) >= 2 and head[0] == 0x78 and (head[0] << 8 | head[1]) % 31 == 0:
        return "joblib" if _walk_pickle(_zlib_stream(path)) is not None else None
    return None


def _opened(path: Path, kind: str | None) -> IO[bytes]:
    if kind == "gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]  # GzipFile reads as IO[bytes]
    if kind == "bz2":
        return bz2.open(path, "rb")
    if kind == "xz":
        return lzma.open(path, "rb")
    return path.open("rb")


def _zlib_stream(path: Path) -> IO[bytes]:
    """The start of a zlib stream (joblib's default compression), decompressed."""
    with path.open("rb") as handle:
        start = handle.read(16 * _HEAD)
    try:
        return io.BytesIO(zlib.decompressobj().decompress(start, 4 * _HEAD))
    except zlib.error:
        return io.BytesIO(b"")


def _walk_pickle(stream: IO[bytes]) -> str | None:
    """``pickle`` or ``joblib`` when ``stream`` is a protocol 2+ pickle that makes an object
    of a class it names."""
    globals_named: list[str] = []
    strings: list[str] = []
    built = False
    try:
        with stream:
            ops = pickletools.genops(stream)
            first = next(ops)
            protocol = first[1] if isinstance(first[1], int) else 0
            if first[0].name != "PROTO" or not 2 <= protocol <= 5:
                return None
            for opcode, arg, position in ops:
                if opcode.name == "GLOBAL" and isinstance(arg, str):
                    _named(globals_named, *arg.partition(" ")[::2])
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    _named(globals_named, strings[-2], strings[-1])
                elif isinstance(arg, str):
                    strings.append(arg)
                if _joblib(globals_named):
                    return "joblib"
                built = built or opcode.name in _CONSTRUCTS
                if opcode.name == "STOP":
                    return "pickle" if globals_named and built and not stream.read(1) else None
                if position is not None and position > _MAX_PICKLE_SCAN:
                    return "pickle" if globals_named and built else None
    except (ValueError, EOFError, StopIteration, OSError, zlib.error, lzma.LZMAError):
        pass
    return "joblib" if _joblib(globals_named) else None


_DOTTED = re.compile(r"^[A-Za-z_][\w.]*\Z")


def _named(names: list[str], module: str, name: str) -> None:
    """Note a class the pickle names, when the names could be Python's."""
    if _DOTTED.match(module) and _DOTTED.match(name):
        names.append(f"{module}.{name}")


def _joblib(names: list[str]) -> bool:
    return any(
        n.startswith("joblib.") and n.rpartition(".")[2] in _JOBLIB_WRAPPERS for n in names[-1:]
    )


# -- skops, XGBoost -----------------------------------------------------------------------------
def _zip_kind(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            if _is_skops(archive):
                return "skops"
            return torch_archive_kind(archive)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, KeyError, OSError):
        return None


def _is_skops(archive: zipfile.ZipFile) -> bool:
    try:
        info = archive.getinfo("schema.json")
        if info.file_size > 64 * 1024 * 1024:
            return False
        schema = json.loads(archive.read(info))
    except (KeyError, ValueError, zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError):
        return False
    return isinstance(schema, dict) and "protocol" in schema and "__class__" in schema


def _is_xgboost_json(path: Path) -> bool:
    model = small_json(path, _MAX_JSON)
    return (
        isinstance(model, dict)
        and isinstance(model.get("learner"), dict)
        and isinstance(model.get("version"), list)
    )


_UBJ_INTS = {ord("i"): 1, ord("U"): 1, ord("I"): 2, ord("l"): 4, ord("L"): 8}
_UBJ_SIZES = {**_UBJ_INTS, ord("d"): 4, ord("D"): 8, ord("C"): 1}
_UBJ_MAX_DEPTH = 64


def _is_xgboost_ubj(path: Path, head: bytes) -> bool:
    """A whole UBJSON document: an object holding ``learner`` (an object) and ``version``."""
    if not head.startswith(b"{") or path.stat().st_size > _MAX_JSON:
        return False
    data = path.read_bytes()
    try:
        end, keys = _ubj_value(data, 0, 0)
    except (_WireError, IndexError, ValueError):
        return False
    return end == len(data) and keys.get("learner") == ord("{") and keys.get("version") == ord("[")


def _ubj_int(data: bytes, at: int) -> tuple[int, int]:
    size = _UBJ_INTS.get(data[at])
    if size is None:
        raise _WireError
    value = int.from_bytes(data[at + 1 : at + 1 + size], "big", signed=data[at] != ord("U"))
    if value < 0 or at + 1 + size > len(data):
        raise _WireError
    return value, at + 1 + size


def _ubj_value(data: bytes, at: int, depth: int) -> tuple[int, dict[str, int]]:
    """Where the value at ``at`` ends; for an object, each key's value marker."""
    marker = data[at]
    if depth > _UBJ_MAX_DEPTH:
        raise _WireError
    if marker in (ord("{"), ord("[")):
        return _ubj_container(data, at + 1, depth, marker == ord("{"))
    if marker in (ord("Z"), ord("T"), ord("F"), ord("N")):
        return at + 1, {}
    if marker in (ord("S"), ord("H")):
        length, at = _ubj_int(data, at + 1)
        if at + length > len(data):
            raise _WireError
        return at + length, {}
    size = _UBJ_SIZES.get(marker)
    if size is None or at + 1 + size > len(data):
        raise _WireError
    return at + 1 + size, {}


def _ubj_container(data: bytes, at: int, depth: int, is_object: bool) -> tuple[int, dict[str, int]]:
    typed: int | None = None
    count: int | None = None
    if data[at] == ord("$"):
        typed, at = data[at + 1], at + 2
        if data[at] != ord("#"):
            raise _WireError
    if data[at] == ord("#"):
        count, at = _ubj_int(data, at + 1)
    keys: dict[str, int] = {}
    index = 0
    while count is None or index < count:
        if count is None and data[at] == (ord("}") if is_object else ord("]")):
            return at + 1, keys
        if is_object:
            length, at = _ubj_int(data, at)
            key = data[at : at + length].decode("utf-8")
            at += length
        if typed is not None and typed in _UBJ_SIZES:
            if is_object:
                keys[key] = typed
            at += _UBJ_SIZES[typed]
            if at > len(data):
                raise _WireError
            if not is_object:  # a typed array: its elements need no look
                at += _UBJ_SIZES[typed] * (count - index - 1) if count is not None else 0
                if at > len(data):
                    raise _WireError
                return at, keys
        else:
            value_at = at
            if typed is not None:  # a typed container's elements carry no marker
                raise _WireError
            at, _ = _ubj_value(data, at, depth + 1)
            if is_object:
                keys[key] = data[value_at]
        index += 1
    return at, keys


# -- ONNX: just enough of the protobuf wire format ---------------------------------------------
# ModelProto's fields (onnx.proto3) and their wire types; graph and its fields are checked too.
_MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2}
_GRAPH_FIELDS = {1: 2, 2: 2, 5: 2, 10: 2, 11: 2, 12: 2, 13: 2, 14: 2, 15: 2, 16: 2}
_NODE, _OUTPUT, _OPSET_IMPORT = 1, 12, 8
_TENSOR_EXTERNAL_DATA = 13
_MAX_IR_VERSION = 64


class _WireError(Exception):
    pass


def _varint(data: mmap.mmap | bytes, at: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= end or shift > 63:
            raise _WireError
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _fields(data: mmap.mmap | bytes, at: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Each field of the message in ``data[at:end]``: (number, wire type, value, end of it);
    for length-delimited fields ``value`` is where the bytes start."""
    while at < end:
        key, at = _varint(data, at, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _WireError
        if wire == 0:
            value, at = _varint(data, at, end)
            yield number, wire, value, at
        elif wire == 2:
            length, at = _varint(data, at, end)
            if at + length > end:
                raise _WireError
            yield number, wire, at, at + length
            at += length
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
            if at > end:
                raise _WireError
            yield number, wire, 0, at
        else:
            raise _WireError


def _parse_onnx(data: mmap.mmap | bytes) -> tuple[int, int] | None:
    """The graph's (start, end) when ``data`` is a ModelProto, else None: an ``ir_version``,
    an ``opset_import`` and a ``graph`` with nodes and outputs, every field well formed."""
    ir_version = 0
    graph: tuple[int, int] | None = None
    seen: set[int] = set()
    for number, wire, value, end in _fields(data, 0, len(data)):
        if _MODEL_FIELDS.get(number, wire) != wire:
            return None
        seen.add(number)
        if number == 1:
            ir_version = value
        elif number == 7:
            graph = (value, end)
    if graph is None or _OPSET_IMPORT not in seen or not 1 <= ir_version <= _MAX_IR_VERSION:
        return None
    seen.clear()
    for number, wire, _value, _end in _fields(data, *graph):
        if _GRAPH_FIELDS.get(number, wire) != wire:
            return None
        seen.add(number)
    return graph if {_NODE, _OUTPUT} <= seen else None


def _is_onnx(handle: io.BufferedReader) -> bool:
    handle.seek(0)
    try:
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _parse_onnx(data) is not None
    except (_WireError, ValueError, OSError):
        return False


def onnx_external_files(path: Path) -> list[str]:
    """The external data files an ONNX model's initializers name (``location``), as written.

    Raises ValueError when ``path`` is no ONNX model."""
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        try:
            graph = _parse_onnx(data)
            if graph is None:
                raise ValueError(f"{path.name} is not an ONNX model")
            return list(_external_locations(data, graph))
        except _WireError:
            raise ValueError(f"{path.name} is not an ONNX model") from None


def _external_locations(data: mmap.mmap, graph: tuple[int, int]) -> Iterator[str]:
    for number, wire, start, end in _fields(data, *graph):
        if number != 5 or wire != 2:  # initializer: TensorProto
            continue
        for t_number, t_wire, t_start, t_end in _fields(data, start, end):
            if t_number != _TENSOR_EXTERNAL_DATA or t_wire != 2:
                continue
            entry = {n: bytes(data[s:e]) for n, w, s, e in _fields(data, t_start, t_end) if w == 2}
            if entry.get(1) == b"location" and 2 in entry:
                yield entry[2].decode("utf-8", "replace")


def inside(folder_relative: str) -> bool:
    """Whether a relative path (an external data file's location) stays inside its folder."""
    normal = posixpath.normpath(folder_relative.replace("\\", "/"))
    return not (posixpath.isabs(normal) or normal == ".." or normal.startswith("../"))
