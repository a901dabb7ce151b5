"""What the Open Inference Protocol's REST and gRPC adapters share (service.py), and how the
gRPC adapter reads a ModelInferRequest into it."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from algora.auth.principals import Caller
from algora.errors import (
    CallTimeout,
    InvalidInput,
    ModelError,
    NotFound,
    Overloaded,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    VersionNotReady,
)
from algora.protocols.oip import grpc_predict_v2_pb2 as pb
from algora.protocols.oip.grpc_messages import infer_of
from algora.protocols.oip.grpc_service import grpc_code, peer_address
from algora.protocols.oip.service import Target, answer_of, status
from algora.protocols.oip.wire import Infer, Wanted, selected, tensor
from algora.runtime.tensors import pack
from algora.workers.spec import CallResult

ANA = Caller(principal_id=1, name="ana", is_admin=False, key_id="k1")
LIMIT = 1 << 20


def test_a_model_is_owner_slash_name_or_the_callers_own() -> None:
    assert Target.named("bo/iris", "1.2", ANA) == Target("bo", "iris", "1.2", "bo/iris")
    assert Target.named("iris", "", ANA) == Target("ana", "iris", None, "iris")
    assert Target.named("iris", None, ANA).resource == "ana/iris"
    for name in ("", "a/b/c", "/iris", "bo/"):
        with pytest.raises(NotFound, match="OWNER/NAME"):
            Target.named(name, None, ANA)


def test_statuses_are_the_protocols_and_map_onto_grpc_codes() -> None:
    assert status(VersionNotReady("building")) == 503
    assert status(NotFound("no")) == 404
    codes = {
        InvalidInput("x"): grpc.StatusCode.INVALID_ARGUMENT,
        Unauthenticated("x"): grpc.StatusCode.UNAUTHENTICATED,
        PermissionDenied("x"): grpc.StatusCode.PERMISSION_DENIED,
        NotFound("x"): grpc.StatusCode.NOT_FOUND,
        VersionNotReady("x"): grpc.StatusCode.UNAVAILABLE,
        Overloaded("x"): grpc.StatusCode.UNAVAILABLE,
        RateLimited("x"): grpc.StatusCode.RESOURCE_EXHAUSTED,
        CallTimeout("x"): grpc.StatusCode.DEADLINE_EXCEEDED,
        ModelError("x"): grpc.StatusCode.INTERNAL,
    }
    for error, code in codes.items():
        assert grpc_code(error) == code, error


def test_a_tensor_from_raw_bytes_or_values_is_checked_the_same_way() -> None:
    raw = np.array([1.5, 2.5], dtype=np.float32).tobytes()
    descriptor, body = tensor("x", "FP32", [2], raw=raw, limit=LIMIT)
    assert descriptor == {"name": "x", "datatype": "FP32", "shape": [2], "length": 8}
    assert body == raw
    assert tensor("x", "FP32", [2], data=[1.5, 2.5], limit=LIMIT)[1] == raw
    with pytest.raises(InvalidInput, match="takes 8 bytes; its raw length is 4"):
        tensor("x", "FP32", [2], raw=raw[:4], limit=LIMIT, size_is="raw length")
    with pytest.raises(InvalidInput, match="datatype"):
        tensor("x", "FP8", [2], raw=raw, limit=LIMIT)
    with pytest.raises(InvalidInput, match="more than the 4-byte limit"):
        tensor("x", "FP32", [2], raw=raw, limit=4)
    with pytest.raises(InvalidInput):
        tensor("x", "BYTES", [2], raw=pack("BYTES", [b"a"]), limit=LIMIT)  # one element, not 2


def test_outputs_are_selected_in_the_order_asked() -> None:
    described = [
        {"name": "a", "datatype": "INT8", "shape": [1], "length": 1},
        {"name": "b", "datatype": "INT8", "shape": [1], "length": 1},
    ]
    infer = Infer(None, [], b"", [Wanted("b", None)], True, {})
    assert [(w.name, bytes(raw)) for w, _d, raw in selected(infer, described, b"\x01\x02")] == [
        ("b", b"\x02")
    ]
    everything = Infer(None, [], b"", [], True, {})
    assert [d["name"] for _w, d, _r in selected(everything, described, b"\x01\x02")] == ["a", "b"]
    with pytest.raises(InvalidInput, match="unknown output 'c'"):
        selected(Infer(None, [], b"", [Wanted("c", None)], True, {}), described, b"\x01\x02")


def test_only_tensors_answer_an_infer() -> None:
    described = [{"name": "a", "datatype": "INT8", "shape": [1], "length": 1}]
    assert answer_of(CallResult("tensors", b"\x01", "", 0.0, tensors=described)) == (
        described,
        b"\x01",
    )
    with pytest.raises(Exception, match="not tensors"):
        answer_of(CallResult("json", b"1", "", 0.0))


def _request(*inputs: pb.ModelInferRequest.InferInputTensor, **fields: object) -> object:
    return pb.ModelInferRequest(model_name="m", inputs=list(inputs), **fields)


def test_a_grpc_request_with_raw_contents() -> None:
    x = pb.ModelInferRequest.InferInputTensor(name="x", datatype="INT64", shape=[2])
    words = pb.ModelInferRequest.InferInputTensor(name="w", datatype="BYTES", shape=[1])
    raw = [np.array([1, 2], dtype=np.int64).tobytes(), pack("BYTES", [b"hi"])]
    request = _request(x, words, raw_input_contents=raw, id="r1")
    request.parameters["scale"].int64_param = 3  # type: ignore[attr-defined]
    request.outputs.add(name="x")  # type: ignore[attr-defined]
    infer = infer_of(request, LIMIT)
    assert infer.id == "r1" and infer.parameters == {"scale": 3}
    assert [t["name"] for t in infer.tensors] == ["x", "w"]
    assert infer.payload == b"".join(raw)
    assert infer.outputs == [Wanted("x", None)]


def test_a_grpc_request_with_typed_contents() -> None:
    flags = pb.ModelInferRequest.InferInputTensor(
        name="f", datatype="BOOL", shape=[2], contents=pb.InferTensorContents(bool_contents=[1, 0])
    )
    assert infer_of(_request(flags), LIMIT).payload == b"\x01\x00"


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (_request(), "needs inputs"),
        (
            _request(
                pb.ModelInferRequest.InferInputTensor(name="x", datatype="INT8", shape=[1]),
                raw_input_contents=[b"\x01", b"\x02"],
            ),
            "one raw content per input",
        ),
        (
            _request(
                pb.ModelInferRequest.InferInputTensor(name="x", datatype="INT8", shape=[1]),
                pb.ModelInferRequest.InferInputTensor(name="x", datatype="INT8", shape=[1]),
                raw_input_contents=[b"\x01", b"\x02"],
            ),
            "given twice",
        ),
        (
            _request(pb.ModelInferRequest.InferInputTensor(name="h", datatype="FP16", shape=[1])),
            "raw_input_contents",
        ),
        (
            _request(
                pb.ModelInferRequest.InferInputTensor(name="x", datatype="INT8", shape=[2]),
                raw_input_contents=[b"\x01"],
            ),
            "takes 2 bytes",
        ),
    ],
)
def test_grpc_requests_that_do_not_fit_name_what_is_wrong(request_: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        infer_of(request_, LIMIT)


def test_the_grpc_peer_is_an_address() -> None:
    assert peer_address("ipv4:127.0.0.1:5000") == ("127.0.0.1", 5000)
    assert peer_address("ipv6:[::1]:5001") == ("::1", 5001)
    assert peer_address("ipv6:%5B::1%5D:5002") == ("::1", 5002)
    assert peer_address("unix:/tmp/socket") is None
    assert peer_address(None) is None
