"""The Open Inference Protocol over gRPC on a running server (``algora serve --grpc-port``):
Triton's own gRPC client, and a stub built from the proto's descriptor for what that client
never sends."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from algora.protocols.oip import grpc_predict_v2_pb2 as pb
from algora.protocols.oip.grpc_messages import RPCS
from algora.testing import RunningServer, write_model

from ...helpers import new_users


@pytest.fixture
def auth(served: RunningServer) -> dict[str, str]:
    return {"authorization": f"Simple {served.key}"}


@pytest.fixture
def client(served: RunningServer, grpc_port: int) -> Iterator[triton.InferenceServerClient]:
    connection = triton.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    yield connection
    connection.close()


@pytest.fixture
def stub(served: RunningServer, grpc_port: int) -> Iterator[Any]:
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        yield SimpleNamespace(
            **{
                rpc.name: (channel.stream_stream if rpc.streaming else channel.unary_unary)(
                    rpc.path,
                    request_serializer=rpc.request.SerializeToString,
                    response_deserializer=rpc.response.FromString,
                )
                for rpc in RPCS
            }
        )


def _input(name: str, array: np.ndarray, datatype: str) -> triton.InferInput:
    tensor = triton.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


def _refused(work: Any) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as refused:
        work()
    return refused.value


def test_health_needs_no_key(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()


def test_metadata_and_readiness(client: triton.InferenceServerClient, auth: Any) -> None:
    server = client.get_server_metadata(headers=auth)
    assert server.name == "algora" and list(server.extensions) == ["binary_tensor_data"]
    assert client.is_model_ready("admin/iris-tensors", headers=auth)
    assert client.is_model_ready("iris-tensors", "1.0.0", headers=auth)  # the caller's own
    assert not client.is_model_ready("admin/broken", "1.0.0", headers=auth)
    meta = client.get_model_metadata("admin/iris-tensors", headers=auth, as_json=True)
    assert meta["name"] == "admin/iris-tensors" and meta["versions"] == ["1.0.0"]
    assert meta["inputs"] == [{"name": "features", "datatype": "FP32", "shape": ["-1", "4"]}]
    assert [o["name"] for o in meta["outputs"]] == ["probabilities", "species"]


def test_infer_fp32_with_output_selection(client: triton.InferenceServerClient, auth: Any) -> None:
    features = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    result = client.infer(
        "admin/iris-tensors",
        [_input("features", features, "FP32")],
        outputs=[triton.InferRequestedOutput("species")],
        request_id="grpc-1",
        headers=auth,
    )
    response = result.get_response()
    assert response.id == "grpc-1" and response.model_version == "1.0.0"
    assert [o.name for o in response.outputs] == ["species"]
    assert result.as_numpy("species").tolist() == [b"setosa", b"virginica"]
    assert result.as_numpy("probabilities") is None
    everything = client.infer(
        "admin/iris-tensors", [_input("features", features, "FP32")], headers=auth
    )
    probabilities = everything.as_numpy("probabilities")
    assert probabilities.dtype == np.float32 and probabilities.shape == (2, 3)
    assert np.allclose(probabilities.sum(axis=1), 1)


def test_every_kind_of_tensor_round_trips(client: triton.InferenceServerClient, auth: Any) -> None:
    arrays = {
        "i64": (np.array([[1, -2], [3, 2**40]], dtype=np.int64), "INT64"),
        "f16": (np.array([0.5, -1.25, 3.0], dtype=np.float16), "FP16"),
        "f64": (np.array([[0.25]], dtype=np.float64), "FP64"),
        "flags": (np.array([True, False]), "BOOL"),
        "words": (np.array([b"abc", "\u00e9t\u00e9".encode(), b""], dtype=object), "BYTES"),
    }
    inputs = [_input(name, a, datatype) for name, (a, datatype) in arrays.items()]
    result = client.infer("mirror", inputs, headers=auth)  # the caller's own, by its bare name
    assert [o.name for o in result.get_response().outputs] == list(arrays)
    i64 = result.as_numpy("i64")
    assert i64.dtype == np.int64 and (i64 == arrays["i64"][0] * 2).all()
    f16 = result.as_numpy("f16")
    assert f16.dtype == np.float16 and f16.tolist() == [1.0, -2.5, 6.0]
    assert result.as_numpy("f64").tolist() == [[0.5]]
    assert result.as_numpy("flags").tolist() == [False, True]
    assert result.as_numpy("words").tolist() == [b"cba", "\u00e9t\u00e9".encode()[::-1], b""]


def test_parameters_reach_the_model(client: triton.InferenceServerClient, auth: Any) -> None:
    x = _input("x", np.array([[1, 2]], dtype=np.int64), "INT64")
    scaled = client.infer("admin/plain", [x], headers=auth, parameters={"scale": 3})
    assert scaled.as_numpy("output_0").tolist() == [[3, 6]]


def test_typed_contents_are_read_too(stub: Any, auth: Any) -> None:
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="x",
        datatype="INT32",
        shape=[3],
        contents=pb.InferTensorContents(int_contents=[1, 2, 3]),
    )
    request = pb.ModelInferRequest(model_name="admin/mirror", inputs=[tensor])
    response = stub.ModelInfer(request, metadata=tuple(auth.items()))
    assert [o.name for o in response.outputs] == ["input"]  # one tensor: the model's own name
    assert np.frombuffer(response.raw_output_contents[0], dtype=np.int32).tolist() == [2, 4, 6]


def test_bad_input_is_invalid_argument(client: triton.InferenceServerClient, auth: Any) -> None:
    fp64 = _input("features", np.zeros((1, 4), dtype=np.float64), "FP64")
    wrong = _refused(lambda: client.infer("admin/iris-tensors", [fp64], headers=auth))
    assert wrong.status() == "StatusCode.INVALID_ARGUMENT" and "takes FP32" in wrong.message()
    shape = _input("features", np.zeros((1, 3), dtype=np.float32), "FP32")
    bad_shape = _refused(lambda: client.infer("admin/iris-tensors", [shape], headers=auth))
    assert bad_shape.status() == "StatusCode.INVALID_ARGUMENT" and "shape" in bad_shape.message()
    unknown = triton.InferRequestedOutput("nothing")
    features = _input("features", np.zeros((1, 4), dtype=np.float32), "FP32")
    output = _refused(
        lambda: client.infer("admin/iris-tensors", [features], outputs=[unknown], headers=auth)
    )
    assert output.status() == "StatusCode.INVALID_ARGUMENT" and "nothing" in output.message()


def test_raw_contents_that_do_not_fit_are_invalid_argument(stub: Any, auth: Any) -> None:
    metadata = tuple(auth.items())

    def refused(request: Any) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(request, metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        return caught.value

    tensor = pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP32", shape=[2, 2])
    short = refused(
        pb.ModelInferRequest(
            model_name="admin/mirror", inputs=[tensor], raw_input_contents=[b"1234"]
        )
    )
    assert "takes 16 bytes" in short.details()
    counted = refused(
        pb.ModelInferRequest(
            model_name="admin/mirror", inputs=[tensor], raw_input_contents=[b"", b""]
        )
    )
    assert "one raw content per input" in counted.details()
    half = pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP16", shape=[1])
    fp16 = refused(pb.ModelInferRequest(model_name="admin/mirror", inputs=[half]))
    assert "raw_input_contents" in fp16.details()
    assert "needs inputs" in refused(pb.ModelInferRequest(model_name="admin/mirror")).details()


def test_statuses_for_models_versions_and_keys(
    client: triton.InferenceServerClient, auth: Any, served: RunningServer
) -> None:
    features = [_input("features", np.zeros((1, 4), dtype=np.float32), "FP32")]
    unknown = _refused(lambda: client.get_model_metadata("admin/nothing", headers=auth))
    assert unknown.status() == "StatusCode.NOT_FOUND"
    version = _refused(lambda: client.infer("admin/mirror", features, "9.9.9", headers=auth))
    assert version.status() == "StatusCode.NOT_FOUND"
    odd = _refused(lambda: client.get_model_metadata("a/b/c", headers=auth))
    assert odd.status() == "StatusCode.NOT_FOUND" and "OWNER/NAME" in odd.message()
    broken = _refused(lambda: client.infer("admin/broken", features, "1.0.0", headers=auth))
    assert broken.status() == "StatusCode.UNAVAILABLE"
    no_key = _refused(lambda: client.infer("admin/iris-tensors", features))
    assert no_key.status() == "StatusCode.UNAUTHENTICATED" and "API key" in no_key.message()
    wrong = {"authorization": "Simple nope"}
    bad_key = _refused(lambda: client.infer("admin/iris-tensors", features, headers=wrong))
    assert bad_key.status() == "StatusCode.UNAUTHENTICATED"
    bearer = {"authorization": f"Bearer {served.key}"}
    assert client.is_model_ready("admin/iris-tensors", headers=bearer)
    with served.client() as admin:
        keys = new_users(admin, "gina")
    hidden = _refused(
        lambda: client.infer(
            "admin/mirror", features, headers={"authorization": f"Simple {keys['gina']}"}
        )
    )
    assert hidden.status() in ("StatusCode.PERMISSION_DENIED", "StatusCode.NOT_FOUND")


def test_an_infer_is_one_audited_call(
    client: triton.InferenceServerClient, auth: Any, served: RunningServer
) -> None:
    x = _input("x", np.array([3], dtype=np.int8), "INT8")
    result = client.infer("admin/mirror", [x], headers={**auth, "x-request-id": "grpc-audit-1"})
    assert result.as_numpy("input").tolist() == [6]  # the model names its one output
    denied = {"authorization": "Simple nope", "x-request-id": "grpc-audit-2"}
    _refused(lambda: client.infer("admin/mirror", [x], headers=denied))
    rest = {"Authorization": f"Simple {served.key}"}

    def rows(request_id: str) -> list[dict[str, Any]]:
        found = httpx.get(
            f"{served.url}/api/v1/audit", params={"request_id": request_id}, headers=rest
        ).json()
        return list(found.get("events", found) if isinstance(found, dict) else found)

    (row,) = rows("grpc-audit-1")
    assert row["action"] == "model.call" and row["status"] == 200
    assert row["resource"] == "admin/mirror" and row["version"] == "1.0.0"
    assert row["peer"] == "127.0.0.1"
    (refusal,) = rows("grpc-audit-2")
    assert refusal["status"] == 401 and refusal["decision"] == "deny"


def test_the_keys_rate_limit_and_scopes_hold(
    client: triton.InferenceServerClient, auth: Any, served: RunningServer
) -> None:
    rest = {"Authorization": f"Simple {served.key}"}
    made = httpx.post(f"{served.url}/api/v1/keys", json={"name": "grpc-limited"}, headers=rest)
    key_id, secret = made.json()["key_id"], made.json()["key"]
    limited = httpx.patch(
        f"{served.url}/api/v1/keys/{key_id}",
        json={"rate_per_second": 0.001, "burst": 1},
        headers=rest,
    )
    assert limited.status_code == 200, limited.text
    x = [_input("x", np.array([1], dtype=np.int8), "INT8")]
    headers = {"authorization": f"Simple {secret}"}
    assert client.infer("admin/mirror", x, headers=headers).as_numpy("input").tolist() == [2]
    refused = _refused(lambda: client.infer("admin/mirror", x, headers=headers))
    assert refused.status() == "StatusCode.RESOURCE_EXHAUSTED"
    narrow = httpx.post(
        f"{served.url}/api/v1/keys",
        json={"name": "grpc-narrow", "scopes": ["call:admin/plain"]},
        headers=rest,
    ).json()["key"]
    scoped = {"authorization": f"Simple {narrow}"}
    other = _refused(lambda: client.infer("admin/mirror", x, headers=scoped))
    assert other.status() == "StatusCode.PERMISSION_DENIED" and "call" in other.message()
    meta = _refused(lambda: client.get_model_metadata("admin/mirror", headers=scoped))
    assert meta.status() == "StatusCode.PERMISSION_DENIED"


SLEEPY = """
import time


def apply(x: list[float]) -> list[float]:
    time.sleep(x[0])
    return x
"""


def test_a_call_past_the_clients_deadline(
    client: triton.InferenceServerClient, auth: Any, served: RunningServer, tmp_path: Path
) -> None:
    with served.client() as admin:
        admin.publish(write_model(tmp_path / "sleepy", "sleepy", SLEEPY))

    def nap(seconds: float) -> list[triton.InferInput]:
        return [_input("input_0", np.array([seconds], dtype=np.float64), "FP64")]

    assert client.infer("admin/sleepy", nap(0), headers=auth).as_numpy("output_0").tolist() == [0]
    late = {**auth, "x-request-id": "grpc-late-1"}
    slow = _refused(lambda: client.infer("admin/sleepy", nap(3), headers=late, client_timeout=1))
    assert slow.status() == "StatusCode.DEADLINE_EXCEEDED"
    rest = {"Authorization": f"Simple {served.key}"}
    for _ in range(50):  # the server may still be writing the row the client did not wait for
        found = httpx.get(
            f"{served.url}/api/v1/audit", params={"request_id": "grpc-late-1"}, headers=rest
        ).json()
        rows = list(found.get("events", found) if isinstance(found, dict) else found)
        if rows:
            break
        time.sleep(0.1)
    (row,) = rows
    assert row["status"] in (504, 499) and row["error_code"] in ("timeout", "client_disconnected")
