"""Triton's streaming inference (``ModelStreamInfer``) and KServe's own gRPC client against a
running server's Open Inference Protocol port."""

from __future__ import annotations

import importlib.util
import queue
import subprocess
import sys
import time
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton

from algora.testing import RunningServer


def _mirror_input(value: int) -> list[triton.InferInput]:
    x = triton.InferInput("x", [1], "INT8")
    x.set_data_from_numpy(np.array([value], dtype=np.int8))
    return [x]


def _stream(
    url: str, headers: dict[str, str], requests: list[tuple[str, str, int]]
) -> dict[str, Any]:
    """Send (model, request id, value) on one stream; the answers (or errors) by request id."""
    answers: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client = triton.InferenceServerClient(url)
    try:
        client.start_stream(callback=lambda result, error: answers.put((result, error)),
                            headers=headers)  # fmt: skip
        for model, request_id, value in requests:
            client.async_stream_infer(model, _mirror_input(value), request_id=request_id)
        got: dict[str, Any] = {}
        for _ in requests:
            result, error = answers.get(timeout=60)
            if error is not None:
                got[f"error {len(got)}"] = error
            else:
                got[result.get_response().id] = result.as_numpy("input").tolist()
        client.stop_stream()
    finally:
        client.close()
    return got


def _call_rows(served: RunningServer, model: str) -> dict[str, dict[str, Any]]:
    found = httpx.get(
        f"{served.url}/api/v1/audit",
        params={"model": model, "limit": 1000},
        headers={"Authorization": f"Simple {served.key}"},
    ).json()
    return {row["request_id"]: row for row in found if row["action"] == "model.call"}


def test_a_stream_answers_every_request_each_audited(served: RunningServer, grpc_port: int) -> None:
    auth = {"authorization": f"Simple {served.key}", "x-request-id": "one-stream"}
    before = _call_rows(served, "admin/mirror")
    requests = [("admin/mirror", f"stream-{n}", n) for n in range(6)]
    requests.insert(3, ("admin/nothing", "stream-unknown", 1))
    got = _stream(f"127.0.0.1:{grpc_port}", auth, requests)
    assert {k: v for k, v in got.items() if k.startswith("stream-")} == {
        f"stream-{n}": [2 * n] for n in range(6)
    }
    (error,) = [v for k, v in got.items() if k.startswith("error")]
    assert "admin/nothing" in error.message()  # and the stream stayed open after it
    for _ in range(50):  # each row is written before its answer; the export may lag a little
        new = {k: v for k, v in _call_rows(served, "admin/mirror").items() if k not in before}
        if len(new) >= 6:
            break
        time.sleep(0.1)
    assert len(new) == 6 and all(row["status"] == 200 for row in new.values())
    assert "one-stream" not in new  # one request id a request, not one a stream


def test_a_stream_without_a_key_refuses_each_request(served: RunningServer, grpc_port: int) -> None:
    got = _stream(f"127.0.0.1:{grpc_port}", {}, [("admin/mirror", "nokey-1", 1)] * 2)
    assert len(got) == 2
    assert all(k.startswith("error") and "API key" in v.message() for k, v in got.items())


KSERVE_GRPC_CLIENT = """
import asyncio, sys

import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest

address, key = sys.argv[1], sys.argv[2]
headers = [("authorization", f"Simple {key}")]


async def run() -> None:
    client = InferenceGRPCClient(address, timeout=30, retries=0)
    try:
        assert await client.is_server_ready()
        assert await client.is_model_ready("admin/iris-tensors", headers=headers)
        features = InferInput("features", [1, 4], "FP32")
        features.set_data_from_numpy(np.array([[6.7, 3.0, 5.2, 2.3]], dtype=np.float32))
        request = InferRequest("admin/iris-tensors", [features], request_id="kg1")
        response = await client.infer(request, headers=headers)
        assert response.id == "kg1" and response.model_version == "1.0.0"
        outputs = {o.name: o.as_numpy() for o in response.outputs}
        assert outputs["probabilities"].shape == (1, 3)
        assert outputs["species"].tolist() in (["virginica"], [b"virginica"])
        try:
            await client.infer(request, headers=[("authorization", "Simple nope")])
        except Exception as refused:  # grpc.aio.AioRpcError
            assert "UNAUTHENTICATED" in str(refused.code()), refused
        else:
            raise AssertionError("a wrong key was accepted")
    finally:
        await client.close()


asyncio.run(run())
"""


def test_kserve_grpc_client(served: RunningServer, grpc_port: int) -> None:
    if importlib.util.find_spec("kserve") is None:  # not imported here: see below
        pytest.skip("KServe's client is not installed (the dev extra brings it)")
    # A process of its own, as for KServe's REST client (test_oip_server.py): kserve registers
    # the protocol's messages in protobuf's default pool, as tritonclient.grpc does.
    done = subprocess.run(
        [sys.executable, "-c", KSERVE_GRPC_CLIENT, f"127.0.0.1:{grpc_port}", served.key],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
