"""Tensors: named, typed, shaped arrays carried as raw bytes (docs/protocol.md, ``tensors``).

A tensor is a descriptor ``{"name", "datatype", "shape", "length"}`` and ``length`` raw bytes:
little-endian, row-major; ``BYTES`` elements each a 4-byte little-endian length and that many
bytes, as in the Open Inference Protocol's binary tensor data extension. Datatypes carry the
protocol's names (``BOOL``, ``INT8``..``INT64``, ``UINT8``..``UINT64``, ``FP16``, ``FP32``,
``FP64``, ``BYTES``).

Standard library only: the gateway imports this module too (to turn JSON tensors into bytes
and back). NumPy is used only by :func:`to_model` and :func:`from_model`, inside the worker,
and only when the model's environment has it.
"""

from __future__ import annotations

import importlib
import itertools
import struct
import sys
from collections.abc import Callable
from typing import Any

__all__ = [
    "DATATYPES",
    "TensorError",
    "byte_size",
    "check_descriptor",
    "element_count",
    "flatten",
    "from_model",
    "is_array",
    "nest",
    "pack",
    "split",
    "to_model",
    "unpack",
]

DATATYPES: dict[str, tuple[str, int]] = {
    "BOOL": ("?", 1),
    "INT8": ("b", 1),
    "INT16": ("h", 2),
    "INT32": ("i", 4),
    "INT64": ("q", 8),
    "UINT8": ("B", 1),
    "UINT16": ("H", 2),
    "UINT32": ("I", 4),
    "UINT64": ("Q", 8),
    "FP16": ("e", 2),
    "FP32": ("f", 4),
    "FP64": ("d", 8),
    "BYTES": ("", 0),
}
"""Datatype -> (``struct`` format character, bytes per element); BYTES has neither."""

_NUMPY_DTYPES = {
    "BOOL": "|b1",
    "INT8": "|i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "|u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
_LENGTH = struct.Struct("<I")


class TensorError(ValueError):
    """A tensor does not hold what its descriptor says (the caller's input is at fault)."""

    code = "invalid_input"


def element_count(shape: list[int]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def byte_size(datatype: str, shape: list[int]) -> int | None:
    """Bytes a tensor of fixed-size elements takes; None for BYTES (variable)."""
    size = DATATYPES[datatype][1]
    return element_count(shape) * size if size else None


def check_descriptor(descriptor: Any) -> dict[str, Any]:
    """The descriptor, checked: a name, a known datatype, a shape of non-negative integers and
    a byte length that fits the shape (fixed-size datatypes)."""
    if not isinstance(descriptor, dict):
        raise TensorError("a tensor descriptor must be an object")
    name = descriptor.get("name")
    datatype = descriptor.get("datatype")
    shape = descriptor.get("shape")
    length = descriptor.get("length")
    if not isinstance(name, str) or not name:
        raise TensorError("a tensor needs a name")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise TensorError(
            f"tensor '{name}' has datatype {datatype!r}: use one of {', '.join(DATATYPES)}"
        )
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise TensorError(f"tensor '{name}' needs a shape of non-negative integers, not {shape!r}")
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise TensorError(f"tensor '{name}' needs a byte length")
    expected = byte_size(datatype, shape)
    if expected is not None and expected != length:
        raise TensorError(
            f"tensor '{name}' of shape {shape} and datatype {datatype} takes {expected} bytes, "
            f"not {length}"
        )
    return descriptor


def split(descriptors: Any, payload: bytes) -> list[tuple[dict[str, Any], memoryview]]:
    """Each checked descriptor with its bytes (views into ``payload``, no copies)."""
    if not isinstance(descriptors, list):
        raise TensorError("a tensors payload needs a list of tensor descriptors")
    view = memoryview(payload)
    parts: list[tuple[dict[str, Any], memoryview]] = []
    offset = 0
    for descriptor in descriptors:
        checked = check_descriptor(descriptor)
        end = offset + checked["length"]
        if end > len(view):
            raise TensorError(f"tensor '{checked['name']}' runs past the end of the payload")
        parts.append((checked, view[offset:end]))
        offset = end
    if offset != len(view):
        raise TensorError(f"the payload holds {len(view) - offset} bytes after the last tensor")
    return parts


def pack(datatype: str, values: list[Any], name: str = "tensor") -> bytes:
    """Flat Python values as a tensor's raw bytes; TensorError naming what does not fit."""
    if datatype == "BYTES":
        out = []
        for value in values:
            if isinstance(value, str):
                value = value.encode("utf-8")
            elif not isinstance(value, (bytes, bytearray)):
                raise TensorError(
                    f"tensor '{name}' is BYTES: its elements must be strings, not "
                    f"{type(value).__name__}"
                )
            out.append(_LENGTH.pack(len(value)))
            out.append(bytes(value))
        return b"".join(out)
    code, _size = DATATYPES[datatype]
    _check_kinds(datatype, values, name)
    try:
        return struct.pack(f"<{len(values)}{code}", *values)
    except (struct.error, OverflowError) as exc:
        raise TensorError(
            f"tensor '{name}' has a value out of range for {datatype}: {exc}"
        ) from None


def _check_kinds(datatype: str, values: list[Any], name: str) -> None:
    if datatype == "BOOL":
        ok = all(isinstance(v, bool) for v in values)
        kind = "true or false"
    elif datatype.startswith(("INT", "UINT")):
        ok = all(_is_int(v) for v in values)
        kind = "integers"
    else:
        ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        kind = "numbers"
    if not ok:
        bad = next(v for v in values if not _fits_kind(datatype, v))
        raise TensorError(
            f"tensor '{name}' is {datatype}: its elements must be {kind}, not {bad!r}"
        )


def _fits_kind(datatype: str, value: Any) -> bool:
    if datatype == "BOOL":
        return isinstance(value, bool)
    if datatype.startswith(("INT", "UINT")):
        return _is_int(value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def unpack(datatype: str, raw: bytes | memoryview, count: int, name: str = "tensor") -> list[Any]:
    """A tensor's raw bytes as a flat list of ``count`` Python values (BYTES: ``bytes``)."""
    if datatype == "BYTES":
        return _unpack_bytes(raw, count, name)
    code, size = DATATYPES[datatype]
    if len(raw) != count * size:
        raise TensorError(
            f"tensor '{name}' of {count} {datatype} elements takes {count * size} bytes, "
            f"not {len(raw)}"
        )
    return list(struct.unpack(f"<{count}{code}", raw))


def _unpack_bytes(raw: bytes | memoryview, count: int, name: str) -> list[Any]:
    view = memoryview(raw)
    values: list[Any] = []
    offset = 0
    while offset < len(view):
        if offset + 4 > len(view):
            raise TensorError(f"BYTES tensor '{name}' ends inside an element's length")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + length > len(view):
            raise TensorError(f"BYTES tensor '{name}' has an element longer than its bytes")
        values.append(bytes(view[offset : offset + length]))
        offset += length
        if len(values) > count:
            break
    if len(values) != count:
        raise TensorError(
            f"BYTES tensor '{name}' holds {len(values)}{'+' if len(values) > count else ''} "
            f"elements; its shape says {count}"
        )
    return values


def flatten(data: Any, shape: list[int], name: str = "tensor") -> list[Any]:
    """JSON ``data``, flat or nested row-major, as a flat list that fits ``shape``."""
    if not isinstance(data, list):
        data = [data]
    flat: list[Any] = []
    pending = [iter(data)]
    while pending:
        for item in pending[-1]:
            if isinstance(item, list):
                pending.append(iter(item))
                break
            flat.append(item)
        else:
            pending.pop()
    expected = element_count(shape)
    if len(flat) != expected:
        raise TensorError(
            f"tensor '{name}' has {len(flat)} elements; its shape {shape} needs {expected}"
        )
    return flat


def nest(flat: list[Any], shape: list[int]) -> Any:
    """A flat row-major list as nested lists of ``shape`` (a scalar for shape ``[]``)."""
    if not shape:
        return flat[0]
    for dim in reversed(shape[1:]):
        flat = [flat[i : i + dim] for i in range(0, len(flat), dim)] if dim else []
    return flat[: shape[0]] if shape[0] else []


def to_model(descriptor: dict[str, Any], raw: memoryview) -> Any:
    """What the model receives for one tensor: a NumPy array when the environment has NumPy
    (zero-copy and read-only for fixed-size datatypes; BYTES: an object array of ``bytes``),
    else nested lists."""
    datatype, shape, name = descriptor["datatype"], descriptor["shape"], descriptor["name"]
    count = element_count(shape)
    numpy = _numpy()
    if numpy is None:
        return nest(unpack(datatype, raw, count, name), shape)
    if datatype == "BYTES":
        array = numpy.empty(count, dtype=object)
        array[:] = _unpack_bytes(raw, count, name)
        return array.reshape(shape)
    return numpy.frombuffer(raw, dtype=_NUMPY_DTYPES[datatype], count=count).reshape(shape)


_numpy_module: list[Any] = []


def _numpy() -> Any:
    """NumPy, imported on the first tensors call, or None when the environment lacks it."""
    if not _numpy_module:
        try:  # by name: the runtime's own imports are the standard library's only
            numpy = importlib.import_module("numpy")
        except ImportError:
            _numpy_module.append(None)
        else:
            _numpy_module.append(numpy)
    return _numpy_module[0]


def from_model(value: Any, name: str) -> tuple[dict[str, Any], bytes]:
    """One result of the model as a tensor: a NumPy array, nested lists of numbers, booleans,
    strings or bytes, or one such value. TypeError when it is none of them."""
    if _is_ndarray(value):
        return _from_ndarray(value, name)
    if isinstance(value, (bool, int, float, str, bytes, bytearray)):
        value, shape = [value], [1]
    elif isinstance(value, (list, tuple)):
        shape = _shape_of(value)
    else:
        raise TypeError(f"output '{name}' is a {type(value).__name__}, not an array")
    flat = flatten(_as_lists(value), shape, name)
    datatype = _datatype_of(flat, name)
    return _descriptor(name, datatype, shape, pack(datatype, flat, name))


def _descriptor(
    name: str, datatype: str, shape: list[int], raw: bytes
) -> tuple[dict[str, Any], bytes]:
    return {"name": name, "datatype": datatype, "shape": shape, "length": len(raw)}, raw


def is_array(value: Any) -> bool:
    """Whether ``value`` is a NumPy array or scalar (without importing NumPy)."""
    return _is_ndarray(value)


def _is_ndarray(value: Any) -> bool:
    numpy = sys.modules.get("numpy")  # a model that returns an array has imported NumPy
    return numpy is not None and isinstance(value, (numpy.ndarray, numpy.generic))


def _from_ndarray(value: Any, name: str) -> tuple[dict[str, Any], bytes]:
    numpy = sys.modules["numpy"]
    array = numpy.asarray(value)
    shape = [int(d) for d in array.shape]
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind in "OSU":
        flat = [v if isinstance(v, (bytes, str)) else str(v) for v in array.reshape(-1).tolist()]
        return _descriptor(name, "BYTES", shape, pack("BYTES", flat, name))
    datatype = {"b": "BOOL", "i": f"INT{size * 8}", "u": f"UINT{size * 8}", "f": f"FP{size * 8}"}
    chosen = datatype.get(kind)
    if chosen not in _NUMPY_DTYPES:
        raise TypeError(f"output '{name}' has dtype {array.dtype}, which has no tensor datatype")
    raw = numpy.ascontiguousarray(array, dtype=_NUMPY_DTYPES[chosen]).tobytes()
    return _descriptor(name, chosen, shape, raw)


def _as_lists(value: Any) -> Any:
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list):
        return [_as_lists(v) if isinstance(v, (list, tuple)) else v for v in value]
    return value


def _shape_of(value: Any) -> list[int]:
    """The shape of nested lists; TypeError when they are ragged."""
    shape: list[int] = []
    level = value
    while isinstance(level, (list, tuple)):
        shape.append(len(level))
        if not level:
            break
        level = level[0]
    _check_regular(value, shape, 0)
    return shape


def _check_regular(value: Any, shape: list[int], depth: int) -> None:
    if depth == len(shape):
        if isinstance(value, (list, tuple)):
            raise TypeError("nested lists of uneven depth are not an array")
        return
    if not isinstance(value, (list, tuple)) or len(value) != shape[depth]:
        raise TypeError(f"nested lists are ragged: not an array of shape {shape}")
    for item in value:
        _check_regular(item, shape, depth + 1)


def _datatype_of(flat: list[Any], name: str) -> str:
    if all(isinstance(v, bool) for v in flat):
        return "BOOL"
    if all(_is_int(v) for v in flat):
        return "INT64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
        return "FP64"
    if all(isinstance(v, (str, bytes, bytearray)) for v in flat):
        return "BYTES"
    raise TypeError(f"output '{name}' mixes values that no one tensor datatype holds")


def run_stacked(
    run: Callable[[Any], Any], values: list[Any]
) -> list[tuple[Any] | dict[str, Any]] | None:
    """A batch of arrays whose first dimension is a batch dimension, run as one: the arrays
    stacked along it, ``run`` called once, its answer (an array, or a dict or list of arrays)
    split back along it per caller. None when they cannot be stacked (not all NumPy arrays of
    one dtype and trailing shape), when ``run`` fails (each caller then gets its own outcome,
    one by one), or when its answer does not split."""
    np = _numpy()
    if np is None or len(values) < 2 or not all(_is_ndarray(v) and v.ndim >= 1 for v in values):
        return None
    first = values[0]
    if any(v.dtype != first.dtype or v.shape[1:] != first.shape[1:] for v in values):
        return None
    sizes = [int(v.shape[0]) for v in values]
    try:
        answer = run(np.concatenate(values))
    except Exception:
        return None
    cuts = list(itertools.accumulate(sizes))[:-1]

    def parts(value: Any) -> list[Any] | None:
        fits = _is_ndarray(value) and value.ndim >= 1 and value.shape[0] == sum(sizes)
        return list(np.split(value, cuts)) if fits else None

    if isinstance(answer, dict):
        split = {key: parts(value) for key, value in answer.items()}
        if any(p is None for p in split.values()):
            return None
        return [
            ({key: p[i] for key, p in split.items() if p is not None},) for i in range(len(sizes))
        ]
    if isinstance(answer, list | tuple):
        pieces = [parts(value) for value in answer]
        if any(p is None for p in pieces):
            return None
        return [([p[i] for p in pieces if p is not None],) for i in range(len(sizes))]
    whole = parts(answer)
    return None if whole is None else [(piece,) for piece in whole]
