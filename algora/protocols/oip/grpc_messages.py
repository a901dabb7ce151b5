"""The Open Inference Protocol's gRPC messages as the adapter reads and writes them, and the
service's RPCs as its proto's descriptor names them (no generated stub module)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from algora.errors import InvalidInput
from algora.protocols.oip import grpc_predict_v2_pb2 as pb
from algora.protocols.oip.wire import MAX_TENSORS, Infer, Wanted, tensor

__all__ = ["RPCS", "SERVICE", "Rpc", "infer_of", "parameters_of", "tensor_metadata"]

_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
"""Where each datatype's values are in typed ``contents`` (FP16 has none: raw only)."""


def tensor_metadata(described: dict[str, Any]) -> Any:
    return pb.ModelMetadataResponse.TensorMetadata(
        name=described["name"], datatype=described["datatype"], shape=described["shape"]
    )


def parameters_of(parameters: Any) -> dict[str, Any]:
    """A protocol ``parameters`` map as plain values."""
    plain: dict[str, Any] = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        plain[key] = getattr(parameter, choice) if choice else None
    return plain


def infer_of(request: Any, limit: int) -> Infer:
    """A ModelInferRequest as the :class:`~.wire.Infer` the REST adapter parses too."""
    inputs, raw = request.inputs, request.raw_input_contents
    if not inputs:
        raise InvalidInput("the inference request needs inputs: a non-empty list of tensors")
    if len(inputs) > MAX_TENSORS or len(request.outputs) > MAX_TENSORS:
        raise InvalidInput(f"at most {MAX_TENSORS} inputs and outputs are taken in one request")
    if raw and len(raw) != len(inputs):
        raise InvalidInput(
            f"the request has {len(inputs)} inputs and {len(raw)} raw_input_contents: send one "
            "raw content per input, in the order of the inputs, or none"
        )
    described: list[dict[str, Any]] = []
    bodies: list[bytes] = []
    for index, item in enumerate(inputs):
        name = item.name
        if not name:
            raise InvalidInput(f"input {index} needs a name")
        if any(d["name"] == name for d in described):
            raise InvalidInput(f"input '{name}' is given twice")
        shape = list(item.shape)
        if raw:
            if item.HasField("contents"):
                raise InvalidInput(f"input '{name}' has both contents and raw contents: send one")
            descriptor, body = tensor(
                name, item.datatype, shape, raw=raw[index], limit=limit,
                size_is="raw content's length",
            )  # fmt: skip
        else:
            field = _CONTENTS.get(item.datatype)
            if field is None and item.datatype == "FP16":
                raise InvalidInput(f"input '{name}' is FP16: send it as raw_input_contents")
            values = list(getattr(item.contents, field)) if field else []
            descriptor, body = tensor(name, item.datatype, shape, data=values, limit=limit)
        described.append(descriptor)
        bodies.append(body)
    wanted = []
    for output in request.outputs:
        if not output.name:
            raise InvalidInput("every output asked for needs a name")
        if "classification" in output.parameters:
            raise InvalidInput("the classification extension is not supported")
        wanted.append(Wanted(output.name, None))
    return Infer(
        id=request.id or None,
        tensors=described,
        payload=b"".join(bodies),
        outputs=wanted,
        binary_output=True,
        parameters=parameters_of(request.parameters),
    )


@dataclass(frozen=True)
class Rpc:
    """One unary RPC of the service: its name and its request and response message classes."""

    name: str
    request: Any
    response: Any
    streaming: bool
    """Both ways: a stream of requests answered by a stream of responses."""

    @property
    def path(self) -> str:
        return f"/{SERVICE.full_name}/{self.name}"


SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
RPCS = tuple(
    Rpc(
        method.name,
        getattr(pb, method.input_type.name),
        getattr(pb, method.output_type.name),
        method.client_streaming and method.server_streaming,
    )
    for method in SERVICE.methods
)
"""The service's RPCs, read from the proto's descriptor rather than generated stub code."""
