"""Arrays end to end: a NumPy array (or a pandas DataFrame, a column each) sent to a model as
raw bytes over the Open Inference Protocol's binary tensor extension, and its answer read back
as arrays, never as JSON lists.

NumPy is not a dependency of the client: it is imported only when the caller hands over an
array, which means the caller has it.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from algora.errors import InvalidInput

__all__ = ["decode_answer", "encode_request", "is_array", "named_arrays"]

HEADER_LENGTH = "Inference-Header-Content-Length"

_DATATYPES = {
    "b1": "BOOL", "i1": "INT8", "i2": "INT16", "i4": "INT32", "i8": "INT64", "u1": "UINT8",
    "u2": "UINT16", "u4": "UINT32", "u8": "UINT64", "f2": "FP16", "f4": "FP32", "f8": "FP64",
}  # fmt: skip
_DTYPES = {name: f"<{code}" if code[1] != "1" else f"|{code}" for code, name in _DATATYPES.items()}


def is_array(data: Any) -> bool:
    """Whether ``data`` is a NumPy array or a pandas DataFrame (sent as tensors)."""
    return hasattr(data, "__array_interface__") or (
        hasattr(data, "columns") and hasattr(data, "to_numpy")
    )


def named_arrays(data: Any, input_names: list[str]) -> list[tuple[str, Any]]:
    """The tensors to send: a DataFrame's columns by name; an array as the model's one declared
    input (``input_0`` when it declares none)."""
    if hasattr(data, "columns") and hasattr(data, "to_numpy"):
        return [(str(column), data[column].to_numpy()) for column in data.columns]
    if len(input_names) > 1:
        raise InvalidInput(
            f"the model takes {len(input_names)} inputs ({', '.join(input_names)}): send a "
            "DataFrame with a column for each, or call /v2 with named tensors"
        )
    return [(input_names[0] if input_names else "input_0", data)]


def _raw(array: Any) -> tuple[str, bytes]:
    import numpy as np  # the caller's: it passed an array

    array = np.asarray(array)
    kind = array.dtype.kind
    if kind in "OSU":  # text or objects: OIP's BYTES, each element length-prefixed
        parts = []
        for item in array.reshape(-1).tolist():
            item = item if isinstance(item, bytes) else str(item).encode("utf-8")
            parts.append(struct.pack("<I", len(item)) + item)
        return "BYTES", b"".join(parts)
    code = f"{kind}{array.dtype.itemsize}"
    if code not in _DATATYPES:
        raise InvalidInput(f"arrays of {array.dtype} cannot be sent as tensors")
    return _DATATYPES[code], np.ascontiguousarray(
        array, dtype=array.dtype.newbyteorder("<")
    ).tobytes()


def encode_request(arrays: list[tuple[str, Any]]) -> tuple[bytes, int]:
    """The infer request body (JSON header, then the raw tensors) and the header's length."""
    inputs, tails = [], []
    for name, array in arrays:
        datatype, raw = _raw(array)
        shape = list(getattr(array, "shape", ()))
        inputs.append({
            "name": name, "datatype": datatype, "shape": shape,
            "parameters": {"binary_data_size": len(raw)},
        })  # fmt: skip
        tails.append(raw)
    header = json.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}}).encode()
    return header + b"".join(tails), len(header)


def decode_answer(body: bytes, header_length: str | None) -> Any:
    """The answer's outputs as arrays: the array itself for a model with one output, else a
    dict of name -> array."""
    import numpy as np

    size = int(header_length) if header_length else len(body)
    header = json.loads(body[:size])
    offset, found = size, {}
    for output in header.get("outputs", []):
        shape = [int(n) for n in output.get("shape", [])]
        binary = output.get("parameters", {}).get("binary_data_size")
        if binary is None:  # sent as JSON data
            found[output["name"]] = np.asarray(output.get("data", [])).reshape(shape)
            continue
        raw = body[offset : offset + int(binary)]
        offset += int(binary)
        found[output["name"]] = _array(np, output["datatype"], raw, shape)
    return next(iter(found.values())) if len(found) == 1 else found


def _array(np: Any, datatype: str, raw: bytes, shape: list[int]) -> Any:
    if datatype == "BYTES":
        items, at = [], 0
        while at < len(raw):
            (length,) = struct.unpack_from("<I", raw, at)
            items.append(raw[at + 4 : at + 4 + length])
            at += 4 + length
        values = np.empty(len(items), dtype=object)
        values[:] = [_text(item) for item in items]
        return values.reshape(shape)
    return np.frombuffer(raw, dtype=np.dtype(_DTYPES[datatype])).reshape(shape)


def _text(item: bytes) -> str | bytes:
    try:
        return item.decode("utf-8")
    except UnicodeDecodeError:
        return item
