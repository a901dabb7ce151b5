"""The Open Inference Protocol's infer messages, in and out of the worker's tensors.

A request's tensors come as JSON ``data`` (flat or nested, row-major) or, with the binary
tensor data extension, as raw bytes after the JSON header (``Inference-Header-Content-Length``
says how long the header is; each such input says its size in ``parameters.binary_data_size``).
Either way they leave here as the worker's tensors (:mod:`algora.runtime.tensors`): descriptors
and one payload. Every way a request can be wrong is an :class:`~algora.errors.InvalidInput`
that names the input and what is wrong with it.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any

from algora.errors import AlgoraError, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from algora.runtime.tensors import (
    DATATYPES,
    TensorError,
    byte_size,
    element_count,
    flatten,
    pack,
    split,
    unpack,
)

__all__ = [
    "HEADER_LENGTH",
    "Declared",
    "Infer",
    "Wanted",
    "decompressed",
    "parse_infer",
    "render_infer",
    "selected",
    "tensor",
]

HEADER_LENGTH = "Inference-Header-Content-Length"
MAX_TENSORS = 4096
"""Most inputs (and outputs asked for) in one request: their descriptors travel in the
worker's frame header, which has a size limit of its own."""


@dataclass(frozen=True)
class Wanted:
    """An output the caller asked for; ``binary`` None: the request's default."""

    name: str
    binary: bool | None


@dataclass(frozen=True)
class Infer:
    """A parsed inference request."""

    id: str | None
    tensors: list[dict[str, Any]]
    payload: bytes
    outputs: list[Wanted]
    """The outputs asked for, in order; empty: all of them."""
    binary_output: bool
    """``parameters.binary_data_output``: outputs as binary data unless they say otherwise."""
    parameters: dict[str, Any]
    """The request's other parameters, for a model whose ``predict`` takes ``parameters``."""


@dataclass(frozen=True)
class Declared:
    """A version's tensors: declared in its manifest (``[[model.inputs]]``,
    ``[[model.outputs]]``) and then enforced, or else derived from its type hints' JSON Schema
    where they describe numbers, strings or (nested) lists of them, and then only shown."""

    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    enforced: bool = True
    input_form: str | None = None
    """How the worker hands the tensors to the model (``array``, ``dict``; None: by count)."""

    @classmethod
    def of(
        cls,
        manifest: dict[str, Any],
        input_schema: dict[str, Any] | None = None,
        output_schema: dict[str, Any] | None = None,
    ) -> Declared:
        model = manifest.get("model") if isinstance(manifest, dict) else None
        model = model if isinstance(model, dict) else {}
        inputs = list(model.get("inputs") or [])
        outputs = list(model.get("outputs") or [])
        if inputs or outputs:
            form = None if not inputs else "array" if len(inputs) == 1 else "dict"
            return cls(inputs, outputs, True, form)
        hinted_in = _from_schema(input_schema, "input_0")
        form = None
        if hinted_in:
            form = "dict" if (input_schema or {}).get("type") == "object" else "array"
        return cls(hinted_in, _from_schema(output_schema, "output_0"), False, form)

    @property
    def output_names(self) -> list[str]:
        return [o["name"] for o in self.outputs] if self.enforced else []

    def check(self, infer: Infer) -> None:
        """Refuse inputs and outputs that the declaration does not allow."""
        if not self.enforced:
            return
        if self.inputs:
            _check_inputs(self.inputs, infer.tensors)
        if self.outputs:
            known = [o["name"] for o in self.outputs]
            for wanted in infer.outputs:
                if wanted.name not in known:
                    raise InvalidInput(
                        f"unknown output '{wanted.name}': the model's outputs are "
                        f"{', '.join(known)}"
                    )


_SCHEMA_DATATYPES = {"number": "FP64", "integer": "INT64", "boolean": "BOOL", "string": "BYTES"}


def _from_schema(schema: Any, name: str) -> list[dict[str, Any]]:
    """The tensors a JSON Schema from type hints describes: an object's properties, each a
    tensor, or one tensor; none when any part is not a number, string or list of them."""
    if not isinstance(schema, dict) or not schema:
        return []
    choices = [_from_schema(choice, name) for choice in schema.get("anyOf") or ()]
    if any(choices):  # rows, or one row: the form with the most dimensions
        return max(choices, key=lambda found: max((len(t["shape"]) for t in found), default=0))
    properties = schema.get("properties")
    if schema.get("type") == "object" and isinstance(properties, dict) and properties:
        tensors_ = [_tensor_of(prop, key) for key, prop in properties.items()]
        return [t for t in tensors_ if t is not None] if all(tensors_) else []
    tensor = _tensor_of(schema, name)
    return [tensor] if tensor is not None else []


def _tensor_of(schema: Any, name: str) -> dict[str, Any] | None:
    shape: list[int] = []
    hinted = None  # an array whose datatype is known (a PyTorch input, an embedding)
    while isinstance(schema, dict) and schema.get("type") == "array":
        size = schema.get("maxItems")
        shape.append(size if isinstance(size, int) and size == schema.get("minItems") else -1)
        hinted = schema.get("x-tensor") or hinted
        schema = schema.get("items")
    datatype = _SCHEMA_DATATYPES.get(str(schema.get("type"))) if isinstance(schema, dict) else None
    if isinstance(hinted, str) and (datatype is not None or schema is None):
        datatype = hinted  # the array's own datatype: FP32 where JSON would say number
    if datatype is None:
        return None
    return {"name": name, "datatype": datatype, "shape": shape or [1]}


def _check_inputs(declared: list[dict[str, Any]], sent: list[dict[str, Any]]) -> None:
    by_name = {d["name"]: d for d in declared}
    for tensor in sent:
        spec = by_name.get(tensor["name"])
        if spec is None:
            raise InvalidInput(
                f"unknown input '{tensor['name']}': the model's inputs are {', '.join(by_name)}"
            )
        if tensor["datatype"] != spec["datatype"]:
            raise InvalidInput(
                f"input '{tensor['name']}' is {tensor['datatype']}; the model takes "
                f"{spec['datatype']}"
            )
        shape, wanted = tensor["shape"], spec["shape"]
        fits = len(shape) == len(wanted) and all(
            w in (-1, s) for s, w in zip(shape, wanted, strict=True)
        )
        if not fits:
            raise InvalidInput(
                f"input '{tensor['name']}' has shape {shape}; the model takes {wanted} "
                "(-1: any size)"
            )
    missing = [name for name in by_name if name not in {t["name"] for t in sent}]
    if missing:
        raise InvalidInput(f"missing input{'s' if len(missing) > 1 else ''} {', '.join(missing)}")


_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def decompressed(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body as sent before its ``Content-Encoding`` (gzip or deflate, as tritonclient's
    ``request_compression_algorithm`` sends it), at most ``limit`` bytes once inflated."""
    name = (encoding or "identity").strip().lower()
    if name == "identity":
        return body
    if name not in _WBITS:
        raise UnsupportedMediaType(
            f"Content-Encoding '{encoding}' is not accepted: send gzip, deflate or none"
        )
    inflater = zlib.decompressobj(_WBITS[name])
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidInput(f"the body is not valid {name} data: {exc}") from None
    if len(data) > limit:
        raise PayloadTooLarge(f"the request body inflates past the {limit}-byte limit")
    if not inflater.eof or inflater.unused_data:
        raise InvalidInput(f"the body is not one complete {name} stream")
    return data


def parse_infer(body: bytes, header_length: str | None, tensor_limit: int) -> Infer:
    """An infer request's body (and its ``Inference-Header-Content-Length``) as an
    :class:`Infer`; no tensor may take more than ``tensor_limit`` bytes."""
    split_at = len(body)
    if header_length is not None:
        text = header_length.strip()
        if not text.isdigit() or int(text) > len(body):
            raise InvalidInput(
                f"{HEADER_LENGTH} is '{header_length}', but the body has {len(body)} bytes: "
                "it must be the length of the JSON header that starts the body"
            )
        split_at = int(text)
    try:
        doc = json.loads(body[:split_at])
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"the inference request is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidInput("the inference request's JSON is nested too deeply") from None
    if not isinstance(doc, dict):
        raise InvalidInput("the inference request must be a JSON object with 'inputs'")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput("the inference request needs 'inputs': a non-empty list of tensors")
    if len(inputs) > MAX_TENSORS:
        raise InvalidInput(f"the request has {len(inputs)} inputs; at most {MAX_TENSORS} are taken")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("the request's 'id' must be a string")
    parameters = _parameters(doc, "the request")
    binary = memoryview(body)[split_at:]
    offset = 0
    described: list[dict[str, Any]] = []
    bodies: list[bytes] = []
    for index, item in enumerate(inputs):
        (descriptor, raw), offset = _input(index, item, binary, offset, tensor_limit)
        if any(d["name"] == descriptor["name"] for d in described):
            raise InvalidInput(f"input '{descriptor['name']}' is given twice")
        described.append(descriptor)
        bodies.append(raw)
    if offset != len(binary):
        raise InvalidInput(
            f"the body holds {len(binary) - offset} bytes of binary data past what the inputs' "
            "binary_data_size parameters account for"
        )
    return Infer(
        id=request_id,
        tensors=described,
        payload=b"".join(bodies),
        outputs=_wanted(doc.get("outputs")),
        binary_output=_flag(parameters, "binary_data_output", "the request"),
        parameters={k: v for k, v in parameters.items() if k != "binary_data_output"},
    )


def _input(
    index: int, item: Any, binary: memoryview, offset: int, limit: int
) -> tuple[tuple[dict[str, Any], bytes], int]:
    if not isinstance(item, dict):
        raise InvalidInput(f"input {index} must be an object with name, datatype and shape")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"input {index} needs a 'name'")
    datatype = item.get("datatype")
    shape = item.get("shape")
    if not isinstance(datatype, str):
        raise InvalidInput(
            f"input '{name}' has datatype {json.dumps(datatype)}: use one of {', '.join(DATATYPES)}"
        )
    if not isinstance(shape, list):
        raise InvalidInput(
            f"input '{name}' needs a 'shape': a list of non-negative integers, not "
            f"{json.dumps(shape)}"
        )
    parameters = _parameters(item, f"input '{name}'")
    size = parameters.get("binary_data_size")
    if size is None:
        if "data" not in item:
            raise InvalidInput(
                f"input '{name}' has neither 'data' nor a binary_data_size parameter"
            )
        return tensor(name, datatype, shape, data=item["data"], limit=limit), offset
    if "data" in item:
        raise InvalidInput(f"input '{name}' has both 'data' and binary data: send one")
    if not _natural(size):
        raise InvalidInput(f"input '{name}': binary_data_size must be a byte count")
    if offset + size > len(binary):
        raise InvalidInput(
            f"input '{name}' says its binary data is {size} bytes, but only "
            f"{len(binary) - offset} bytes of binary data are left in the body"
        )
    raw = bytes(binary[offset : offset + size])
    return tensor(name, datatype, shape, raw=raw, limit=limit), offset + size


def tensor(
    name: str,
    datatype: str,
    shape: list[int],
    *,
    raw: bytes | None = None,
    data: Any = None,
    limit: int,
    size_is: str = "binary_data_size",
) -> tuple[dict[str, Any], bytes]:
    """One input tensor, checked, as the worker's descriptor and its bytes: given as ``raw``
    bytes (the binary extension, gRPC's raw contents) or as flat or nested ``data`` values;
    ``size_is`` names what said the raw bytes' size, for the message when it is wrong."""
    if datatype not in DATATYPES:
        raise InvalidInput(
            f"input '{name}' has datatype {json.dumps(datatype)}: use one of {', '.join(DATATYPES)}"
        )
    if not all(_natural(d) for d in shape):
        raise InvalidInput(
            f"input '{name}' needs a 'shape': a list of non-negative integers, not "
            f"{json.dumps(shape)}"
        )
    expected = byte_size(datatype, shape)
    if expected is not None and expected > limit:
        raise InvalidInput(
            f"input '{name}' of shape {shape} and datatype {datatype} would take {expected} "
            f"bytes, more than the {limit}-byte limit of a request"
        )
    try:
        if raw is None:
            raw = pack(datatype, flatten(data, shape, name), name)
        elif expected is not None and len(raw) != expected:
            raise InvalidInput(
                f"input '{name}' of shape {shape} and datatype {datatype} takes {expected} "
                f"bytes; its {size_is} is {len(raw)}"
            )
        elif datatype == "BYTES":
            unpack(datatype, raw, element_count(shape), name)  # the elements fit the shape
    except TensorError as exc:
        raise InvalidInput(str(exc)) from None
    return {"name": name, "datatype": datatype, "shape": shape, "length": len(raw)}, raw


def _natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _parameters(item: dict[str, Any], what: str) -> dict[str, Any]:
    parameters = item.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise InvalidInput(f"{what}'s 'parameters' must be an object")
    return parameters


def _flag(parameters: dict[str, Any], key: str, what: str) -> bool:
    value = parameters.get(key, False)
    if not isinstance(value, bool):
        raise InvalidInput(f"{what}'s parameter {key} must be true or false")
    return value


def _wanted(outputs: Any) -> list[Wanted]:
    if outputs is None:
        return []
    if not isinstance(outputs, list):
        raise InvalidInput("'outputs' must be a list of {\"name\": ...} objects")
    if len(outputs) > MAX_TENSORS:
        raise InvalidInput(f"the request asks for {len(outputs)} outputs; at most {MAX_TENSORS}")
    wanted = []
    for index, item in enumerate(outputs):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"output {index} needs a 'name'")
        parameters = _parameters(item, f"output '{name}'")
        if "classification" in parameters:
            raise InvalidInput("the classification extension is not supported")
        binary = parameters.get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise InvalidInput(f"output '{name}': binary_data must be true or false")
        wanted.append(Wanted(name, binary))
    return wanted


def selected(
    infer: Infer, described: list[dict[str, Any]], payload: bytes
) -> list[tuple[Wanted, dict[str, Any], memoryview]]:
    """The outputs the request asks for (all, in the model's order, when it names none), each
    with its descriptor and bytes."""
    try:
        parts = {d["name"]: (d, raw) for d, raw in split(described, payload)}
    except TensorError as exc:
        raise AlgoraError(f"the model's worker sent tensors that do not add up: {exc}") from None
    chosen = infer.outputs or [Wanted(name, None) for name in parts]
    for wanted in chosen:
        if wanted.name not in parts:
            raise InvalidInput(
                f"unknown output '{wanted.name}': the model returned {', '.join(parts)}"
            )
    return [(wanted, *parts[wanted.name]) for wanted in chosen]


def render_infer(
    infer: Infer, described: list[dict[str, Any]], payload: bytes, model: str, version: str
) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers for the model's output tensors."""
    outputs: list[dict[str, Any]] = []
    binaries: list[bytes] = []
    for wanted, descriptor, raw in selected(infer, described, payload):
        out = {k: descriptor[k] for k in ("name", "datatype", "shape")}
        binary = infer.binary_output if wanted.binary is None else wanted.binary
        if binary:
            out["parameters"] = {"binary_data_size": len(raw)}
            binaries.append(bytes(raw))
        else:
            out["data"] = _json_data(descriptor, raw)
        outputs.append(out)
    doc: dict[str, Any] = {"model_name": model, "model_version": version}
    if infer.id is not None:
        doc["id"] = infer.id
    doc["outputs"] = outputs
    head = json.dumps(doc, separators=(",", ":")).encode()
    if not binaries:
        return head, {"Content-Type": "application/json"}
    headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(head))}
    return b"".join([head, *binaries]), headers


def _json_data(descriptor: dict[str, Any], raw: memoryview) -> list[Any]:
    name, datatype = descriptor["name"], descriptor["datatype"]
    values = unpack(datatype, raw, element_count(descriptor["shape"]), name)
    if datatype != "BYTES":
        return values
    try:
        return [value.decode("utf-8") for value in values]
    except UnicodeDecodeError:
        raise InvalidInput(
            f"output '{name}' holds bytes that are not UTF-8 text: ask for it as binary data "
            '(its "parameters": {"binary_data": true})'
        ) from None
