"""The Open Inference Protocol (``/v2``) on a running server: Triton's own client, and the
wire itself (JSON tensors, the binary extension, every refusal) with plain HTTP."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from algora.testing import RunningServer, write_model

from ...helpers import new_users
from .conftest import PLAIN


@pytest.fixture
def headers(served: RunningServer) -> dict[str, str]:
    """A new dict per test: tritonclient adds Inference-Header-Content-Length to the one it
    is given."""
    return {"Authorization": f"Simple {served.key}"}


@pytest.fixture
def client(served: RunningServer) -> Iterator[triton.InferenceServerClient]:
    connection = triton.InferenceServerClient(served.url.removeprefix("http://"))
    yield connection
    connection.close()


def _input(name: str, array: np.ndarray, datatype: str, *, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


# -- Triton's client ------------------------------------------------------------------------


def test_health_needs_no_key(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()


def test_metadata_and_readiness(client: triton.InferenceServerClient, headers: Any) -> None:
    assert client.get_server_metadata(headers=headers)["extensions"] == ["binary_tensor_data"]
    assert client.is_model_ready("admin/iris-tensors", headers=headers)
    assert client.is_model_ready("iris-tensors", "1.0.0", headers=headers)  # the caller's own
    meta = client.get_model_metadata("admin/iris-tensors", headers=headers)
    assert meta["versions"] == ["1.0.0"]
    assert meta["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]
    assert [o["name"] for o in meta["outputs"]] == ["probabilities", "species"]
    dynamic = client.get_model_metadata("admin/mirror", headers=headers)
    assert dynamic["inputs"] == [] and dynamic["outputs"] == []


@pytest.mark.parametrize("binary", [True, False])
def test_infer_fp32_binary_and_json(
    client: triton.InferenceServerClient, headers: Any, binary: bool
) -> None:
    features = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    outputs = [
        triton.InferRequestedOutput("species", binary_data=binary),
        triton.InferRequestedOutput("probabilities", binary_data=binary),
    ]
    result = client.infer(
        "admin/iris-tensors",
        [_input("features", features, "FP32", binary=binary)],
        outputs=outputs,
        request_id="mine-1",
        headers=headers,
    )
    response = result.get_response()
    assert response["id"] == "mine-1"
    assert response["model_name"] == "admin/iris-tensors"
    assert response["model_version"] == "1.0.0"
    assert [o["name"] for o in response["outputs"]] == ["species", "probabilities"]
    assert [s.decode() if binary else s for s in result.as_numpy("species")] == [
        "setosa",
        "virginica",
    ]
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32 and probabilities.shape == (2, 3)
    assert np.allclose(probabilities.sum(axis=1), 1)


@pytest.mark.parametrize("compression", ["gzip", "deflate"])
def test_compressed_requests(
    client: triton.InferenceServerClient, headers: Any, compression: str
) -> None:
    features = np.array([[6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    result = client.infer(
        "admin/iris-tensors",
        [_input("features", features, "FP32", binary=True)],
        headers=headers,
        request_compression_algorithm=compression,
        response_compression_algorithm=compression,  # answered uncompressed: allowed
    )
    assert result.as_numpy("species").tolist() == [b"virginica"]


def test_output_selection(client: triton.InferenceServerClient, headers: Any) -> None:
    features = np.array([[5.9, 2.8, 4.3, 1.3]], dtype=np.float32)
    result = client.infer(
        "admin/iris-tensors",
        [_input("features", features, "FP32", binary=True)],
        outputs=[triton.InferRequestedOutput("species")],
        headers=headers,
    )
    assert [o["name"] for o in result.get_response()["outputs"]] == ["species"]
    assert result.as_numpy("species").tolist() == [b"versicolor"]
    assert result.as_numpy("probabilities") is None


@pytest.mark.parametrize("binary", [True, False])
def test_every_kind_of_tensor_reaches_numpy(
    client: triton.InferenceServerClient, headers: Any, binary: bool
) -> None:
    arrays = {
        "i64": (np.array([[1, -2], [3, 2**40]], dtype=np.int64), "INT64"),
        "f16": (np.array([0.5, -1.25, 3.0], dtype=np.float16), "FP16"),
        "u8": (np.array([1, 2, 127], dtype=np.uint8), "UINT8"),
        "flags": (np.array([True, False]), "BOOL"),
        "words": (np.array([b"abc", b"de", b""], dtype=object), "BYTES"),
    }
    inputs = [_input(name, a, datatype, binary=binary) for name, (a, datatype) in arrays.items()]
    outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in arrays]
    result = client.infer("admin/mirror", inputs, outputs=outputs, headers=headers)
    assert (result.as_numpy("i64") == arrays["i64"][0] * 2).all()
    assert result.as_numpy("f16").dtype == np.float16
    assert result.as_numpy("f16").tolist() == [1.0, -2.5, 6.0]
    assert result.as_numpy("u8").tolist() == [2, 4, 254]
    assert result.as_numpy("flags").tolist() == [False, True]
    words = [w if isinstance(w, bytes) else w.encode() for w in result.as_numpy("words")]
    assert words == [b"cba", b"ed", b""]


def test_a_model_without_numpy_gets_lists(
    client: triton.InferenceServerClient, headers: Any
) -> None:
    values = np.array([[1, 2], [3, 4]], dtype=np.int32)
    result = client.infer(
        "admin/plain", [_input("x", values, "INT32", binary=True)], headers=dict(headers)
    )
    (output,) = result.get_response()["outputs"]
    assert output["name"] == "output_0" and output["datatype"] == "INT64"
    assert result.as_numpy("output_0").tolist() == [[1, 2], [3, 4]]
    scaled = client.infer(
        "admin/plain",
        [_input("x", values, "INT32", binary=False)],
        parameters={"scale": 3},  # the request's parameters reach a model that takes them
        headers=dict(headers),
    )
    assert scaled.as_numpy("output_0").tolist() == [[3, 6], [9, 12]]
    meta = client.get_model_metadata("admin/plain", headers=headers)  # from the type hints
    assert meta["inputs"] == [{"name": "input_0", "datatype": "INT64", "shape": [-1, -1]}]
    assert meta["outputs"] == [{"name": "output_0", "datatype": "INT64", "shape": [-1, -1]}]


def test_refusals_carry_the_protocols_statuses(
    client: triton.InferenceServerClient, headers: Any
) -> None:
    x = _input("features", np.zeros((1, 4), dtype=np.float64), "FP64", binary=True)
    with pytest.raises(InferenceServerException) as wrong:
        client.infer("admin/iris-tensors", [x], headers=headers)
    assert wrong.value.status() == "400" and "takes FP32" in wrong.value.message()
    with pytest.raises(InferenceServerException) as unknown:
        client.get_model_metadata("admin/nothing-here", headers=headers)
    assert unknown.value.status() == "404"
    with pytest.raises(InferenceServerException) as no_key:
        client.get_model_metadata("admin/iris-tensors")
    assert no_key.value.status() == "401"
    assert not client.is_model_ready("admin/broken", "1.0.0", headers=headers)


# -- the wire, by hand ----------------------------------------------------------------------


def _post(served: RunningServer, path: str, body: Any, headers: Any, **extra: str) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{served.url}{path}", content=content, headers={**headers, **extra})


def _features(**overrides: Any) -> dict[str, Any]:
    tensor = {"name": "features", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}
    return {"inputs": [{**tensor, **overrides}]}


def test_json_infer_with_nested_data_and_the_encoded_name(
    served: RunningServer, headers: Any
) -> None:
    body = _features(shape=[2, 4], data=[[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
    answer = _post(served, "/v2/models/admin%2Firis-tensors/infer", body, headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    assert outputs["species"] == {
        "name": "species",
        "datatype": "BYTES",
        "shape": [2],
        "data": ["setosa", "virginica"],
    }
    assert len(outputs["probabilities"]["data"]) == 6


def test_binary_extension_by_hand(served: RunningServer, headers: Any) -> None:
    raw = struct.pack("<4f", 6.7, 3.0, 5.2, 2.3)
    head = json.dumps(
        {
            "inputs": [
                {"name": "features", "datatype": "FP32", "shape": [1, 4],
                 "parameters": {"binary_data_size": len(raw)}}
            ],
            "parameters": {"binary_data_output": True},
            "outputs": [{"name": "probabilities"},
                        {"name": "species", "parameters": {"binary_data": False}}],
        }
    ).encode()  # fmt: skip
    answer = _post(
        served, "/v2/models/admin/iris-tensors/versions/1.0.0/infer", head + raw, headers,
        **{"Inference-Header-Content-Length": str(len(head))},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    size = int(answer.headers["inference-header-content-length"])
    doc = json.loads(answer.content[:size])
    probabilities, species = doc["outputs"]
    assert species["data"] == ["virginica"]
    assert probabilities["parameters"] == {"binary_data_size": 12}
    assert len(answer.content) == size + 12
    assert sum(struct.unpack("<3f", answer.content[size:])) == pytest.approx(1)


def _binary(raw: bytes, size: int, header_length: int | None = None) -> tuple[bytes, str]:
    head = json.dumps(
        {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4],
                     "parameters": {"binary_data_size": size}}]}
    ).encode()  # fmt: skip
    return head + raw, str(len(head) if header_length is None else header_length)


@pytest.mark.parametrize(
    ("body", "length", "message"),
    [
        (_features(datatype="FP8"), None, 'datatype "FP8"'),
        (_features(datatype="INT32", data=[1, 2, 3, 4]), None, "is INT32; the model takes FP32"),
        (_features(data=[1.0, 2.0, 3.0]), None, "has 3 elements; its shape [1, 4] needs 4"),
        (_features(shape=[1, 5], data=[1.0] * 5), None, "the model takes [-1, 4]"),
        (_features(shape=[10**9, 4]), None, "more than the"),
        (_features(data=["a", 1, 2, 3]), None, "must be numbers, not 'a'"),
        (_features(name="other"), None, "unknown input 'other'"),
        ({"inputs": []}, None, "non-empty list"),
        ({**_features(), "outputs": [{"name": "nope"}]}, None, "unknown output 'nope'"),
        (b"{not json", None, "not valid JSON"),
        (*_binary(b"\x00" * 8, 16), "only 8 bytes of binary data"),
        (*_binary(b"\x00" * 20, 16), "4 bytes of binary data past"),
        (*_binary(b"\x00" * 12, 12), "takes 16 bytes; its binary_data_size is 12"),
        (*_binary(b"\x00" * 16, 16, 10**6), "Inference-Header-Content-Length is"),
    ],
)
def test_bad_input_is_a_400_naming_what_is_wrong(
    served: RunningServer, headers: Any, body: Any, length: str | None, message: str
) -> None:
    extra = {"Inference-Header-Content-Length": length} if length else {}
    answer = _post(served, "/v2/models/admin/iris-tensors/infer", body, headers, **extra)
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]


def test_unknown_output_of_a_dynamic_model_and_non_utf8_bytes(
    served: RunningServer, headers: Any
) -> None:
    words = {"name": "w", "datatype": "BYTES", "shape": [1], "data": ["ok"]}
    answer = _post(
        served, "/v2/models/admin/mirror/infer",
        {"inputs": [words], "outputs": [{"name": "x"}]}, headers,
    )  # fmt: skip
    assert answer.status_code == 400 and "unknown output 'x'" in answer.json()["error"]
    raw = b"\x01\x00\x00\x00\xff"
    head = json.dumps(
        {"inputs": [{"name": "w", "datatype": "BYTES", "shape": [1],
                     "parameters": {"binary_data_size": len(raw)}}]}
    ).encode()  # fmt: skip
    answer = _post(
        served, "/v2/models/admin/mirror/infer", head + raw, headers,
        **{"Inference-Header-Content-Length": str(len(head))},
    )  # fmt: skip
    assert answer.status_code == 400 and "not UTF-8" in answer.json()["error"]


def test_statuses_for_models_versions_keys_and_rights(served: RunningServer, headers: Any) -> None:
    def get(path: str, auth: Any = headers) -> httpx.Response:
        return httpx.get(f"{served.url}{path}", headers=auth)

    assert get("/v2/models/admin/nothing").status_code == 404
    assert get("/v2/models/admin/mirror/versions/9.9.9").status_code == 404
    broken = get("/v2/models/admin/broken/versions/1.0.0/ready")
    assert broken.status_code == 503 and "failed" in broken.json()["error"]
    assert get("/v2/models/admin/mirror", {}).status_code == 401
    assert get("/v2/models/admin/mirror", {"Authorization": "Simple nope"}).status_code == 401
    with served.client() as admin:
        keys = new_users(admin, "olga")
    olga = {"Authorization": f"Simple {keys['olga']}"}
    hidden = get("/v2/models/admin/mirror", olga)  # a private model of someone else
    assert hidden.status_code in (403, 404) and "error" in hidden.json()
    answer = _post(served, "/v2/models/admin/mirror/infer", _features(), olga)
    assert answer.status_code in (403, 404)
    assert get("/v2/models/a/b/c/d").status_code == 404
    assert get("/v2", {}).status_code == 401


def test_an_infer_is_one_audited_call(served: RunningServer, headers: Any) -> None:
    answer = _post(
        served, "/v2/models/admin/mirror/infer",
        {"inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [3]}]},
        headers, **{"X-Request-Id": "oip-audit-1"},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == [6]
    rows = httpx.get(
        f"{served.url}/api/v1/audit", params={"request_id": "oip-audit-1"}, headers=headers
    ).json()
    rows = rows.get("events", rows) if isinstance(rows, dict) else rows
    (row,) = rows
    assert row["action"] == "model.call"
    assert row["resource"] == "admin/mirror" and row["version"] == "1.0.0"
    assert row["status"] == 200


def test_the_keys_rate_limit_and_scopes_hold_on_v2(served: RunningServer, headers: Any) -> None:
    made = httpx.post(f"{served.url}/api/v1/keys", json={"name": "oip-limited"}, headers=headers)
    assert made.status_code == 201, made.text
    key_id, secret = made.json()["key_id"], made.json()["key"]
    limited = httpx.patch(
        f"{served.url}/api/v1/keys/{key_id}",
        json={"rate_per_second": 0.001, "burst": 1},
        headers=headers,
    )
    assert limited.status_code == 200, limited.text
    body = {"inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [1]}]}
    auth = {"Authorization": f"Simple {secret}"}
    assert _post(served, "/v2/models/admin/mirror/infer", body, auth).status_code == 200
    refused = _post(served, "/v2/models/admin/mirror/infer", body, auth)
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert "error" in refused.json()
    narrow = httpx.post(
        f"{served.url}/api/v1/keys",
        json={"name": "oip-narrow", "scopes": ["call:admin/plain"]},
        headers=headers,
    ).json()["key"]
    other = _post(
        served, "/v2/models/admin/mirror/infer", body, {"Authorization": f"Simple {narrow}"}
    )
    assert other.status_code == 403 and "call" in other.json()["error"]
    assert (
        httpx.get(
            f"{served.url}/v2/models/admin/mirror", headers={"Authorization": f"Simple {narrow}"}
        ).status_code
        == 403
    )


def test_without_a_version_production_answers_else_the_latest(
    served: RunningServer, headers: Any, tmp_path: Any
) -> None:
    folder = write_model(tmp_path / "twice", "twice", PLAIN)
    with served.client() as client:
        client.publish(folder, version="1.0.0")
        client.publish(folder, version="1.1.0")
    body = {"inputs": [{"name": "x", "datatype": "INT64", "shape": [1, 1], "data": [5]}]}

    def served_version() -> str:
        answer = _post(served, "/v2/models/admin/twice/infer", body, headers)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["model_version"])

    assert served_version() == "1.1.0"
    moved = httpx.put(
        f"{served.url}/api/v1/models/admin/twice/aliases/production",
        json={"version": "1.0.0"},
        headers=headers,
    )
    assert moved.status_code == 200, moved.text
    time.sleep(2.5)  # a model found without the alias is asked again after two seconds
    assert served_version() == "1.0.0"
    meta = httpx.get(f"{served.url}/v2/models/admin/twice", headers=headers).json()
    assert meta["versions"] == ["1.0.0"]


BATCHED = """
class Model:
    def predict(self, x):
        return self.predict_batch([x])[0]

    def predict_batch(self, inputs):
        return [{"x": x, "batch": len(inputs)} for x in inputs]
"""


def test_tensor_calls_are_batched_and_answered_each_its_own(
    served: RunningServer, headers: Any, tmp_path: Any
) -> None:
    folder = write_model(
        tmp_path / "batched", "batched", BATCHED, entrypoint="model:Model",
        extra_manifest="\n[serving]\nmax_batch_size = 8\nmax_wait_ms = 300\n",
    )  # fmt: skip
    with served.client() as client:
        client.publish(folder)

    def infer(value: int) -> dict[str, Any]:
        body = {"inputs": [{"name": "x", "datatype": "INT16", "shape": [1], "data": [value]}]}
        answer = _post(served, "/v2/models/admin/batched/infer", body, headers)
        assert answer.status_code == 200, answer.text
        return {o["name"]: o["data"] for o in answer.json()["outputs"]}

    infer(0)  # the worker is started
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(infer, range(1, 7)))
    assert [a["x"] for a in answers] == [[v] for v in range(1, 7)]
    assert max(a["batch"][0] for a in answers) > 1


STACKED = """
import numpy as np


class Model:
    def predict(self, x):
        rows = len(x)
        return {"y": x * 2, "rows": np.full(rows, rows, dtype=np.int64)}
"""
STACKED_MANIFEST = """
[[model.inputs]]
name = "x"
datatype = "FP32"
shape = [-1, 2]

[serving]
max_batch_size = 8
max_wait_ms = 300
"""


def test_batched_arrays_are_stacked_into_one_and_split_back(
    served: RunningServer, headers: Any, tmp_path: Any
) -> None:
    folder = write_model(
        tmp_path / "stacked", "stacked", STACKED, entrypoint="model:Model",
        requirements="numpy==2.4.6\n",  # as examples/tensors: one environment for both
        extra_manifest=STACKED_MANIFEST,
    )  # fmt: skip
    with served.client() as client:
        client.publish(folder)

    def infer(value: int) -> dict[str, Any]:
        data = [float(value), float(value) + 0.5]
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": data}]}
        answer = _post(served, "/v2/models/admin/stacked/infer", body, headers)
        assert answer.status_code == 200, answer.text
        return {o["name"]: o["data"] for o in answer.json()["outputs"]}

    infer(0)  # the worker is started
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(infer, range(1, 7)))
    assert [a["y"] for a in answers] == [[2.0 * v, 2.0 * v + 1.0] for v in range(1, 7)]
    assert max(a["rows"][0] for a in answers) > 1  # one predict over several callers' rows


# -- KServe's client ------------------------------------------------------------------------


KSERVE_CLIENT = """
import asyncio, sys

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

url, key = sys.argv[1], sys.argv[2]
headers = {"Authorization": f"Simple {key}"}


async def run() -> None:
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
    try:
        assert await client.is_server_live(url)
        assert await client.is_server_ready(url)
        assert await client.is_model_ready(url, "admin/iris-tensors", headers=headers)
        for binary in (True, False):
            features = InferInput("features", [1, 4], "FP32")
            features.set_data_from_numpy(
                np.array([[6.7, 3.0, 5.2, 2.3]], dtype=np.float32), binary_data=binary
            )
            request = InferRequest("admin/iris-tensors", [features], request_id="k1")
            response = await client.infer(  # it adds to the headers it is given
                url, request, "admin/iris-tensors", headers=dict(headers)
            )
            assert response.id == "k1"
            outputs = {o.name: o.as_numpy() for o in response.outputs}
            assert outputs["probabilities"].shape == (1, 3)
            species = outputs["species"].tolist()
            assert species in (["virginica"], [b"virginica"])
    finally:
        await client.close()


asyncio.run(run())
"""


def test_kserve_rest_client(served: RunningServer) -> None:
    # In a process of its own: kserve registers the protocol's gRPC messages (inference.*) in
    # protobuf's default pool, as tritonclient.grpc does, and one process cannot import both.
    done = subprocess.run(
        [sys.executable, "-c", KSERVE_CLIENT, served.url, served.key],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
