"""The worker conformance suite: what any worker must do to serve behind the gateway.

One suite, run over every worker kind (the Python runtime and the Node worker), driving real
worker processes through the frame protocol with the gateway's own pool and local backend
(docs/protocol.md, "Other languages"). A worker in a new language passes when the same model,
written in that language (``models.py``), passes every test here.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import struct
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from algora.errors import CallTimeout, InvalidInput, ModelError, ModelLoadFailed, WorkerDied
from algora.workers.local import LocalBackend
from algora.workers.pool import Pool
from algora.workers.sandbox import sandbox_status
from algora.workers.spec import CallRequest, WorkerSpec

from ..helpers import run_with_pool
from . import models

KINDS = ["python", "node"]
ERROR_TYPES = {"python": "ValueError", "node": "RangeError"}
MODEL_FILES = {"python": "model.py", "node": "model.js"}


def make_spec(tmp_path: Path, kind: str, source: str | None = None, **kw: Any) -> WorkerSpec:
    """A worker of ``kind`` for ``source`` (default: the conformance model)."""
    src = tmp_path / "sources" / kind
    src.mkdir(parents=True, exist_ok=True)
    if kind == "python":
        (src / "model.py").write_text(source or models.PYTHON, encoding="utf-8")
        interpreter, entrypoint = Path(sys.executable), "model:Model"
    else:
        node = shutil.which("node")
        if node is None:
            pytest.skip("node is not installed")
        (src / "model.js").write_text(source or models.NODE, encoding="utf-8")
        interpreter, entrypoint = Path(node), "model.js:Model"
        kw["runtime"] = "node"
    if source is not None:
        entrypoint = entrypoint.split(":")[0]
    return WorkerSpec(
        python=interpreter,
        source_dir=src,
        entrypoint=entrypoint,
        log_path=tmp_path / "logs" / f"{kind}.log",
        **kw,
    )


def call(
    value: Any, content_type: str = "json", *, timeout: float = 10.0, rid: str = "r"
) -> CallRequest:
    if content_type == "json":
        payload = json.dumps(value).encode()
    elif content_type == "text":
        payload = str(value).encode()
    else:
        payload = bytes(value)
    return CallRequest(rid, content_type, payload, timeout)  # type: ignore[arg-type]


def tensors_call(tensors: list[tuple[str, str, list[int], bytes]], **fields: Any) -> CallRequest:
    descriptors = [
        {"name": name, "datatype": datatype, "shape": shape, "length": len(raw)}
        for name, datatype, shape, raw in tensors
    ]
    payload = b"".join(raw for *_, raw in tensors)
    return CallRequest("t", "tensors", payload, 10.0, fields={"tensors": descriptors, **fields})


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_load_reports_ready(tmp_path: Path, kind: str) -> None:
    async def body(pool: Pool) -> None:
        assert pool.healthy
        assert pool.info is not None
        assert (pool.info.kind, pool.info.batch) == ("class", True)
        assert pool.info.load_seconds > 0

    run_with_pool(tmp_path, make_spec(tmp_path, kind), body)


def test_calls_json_text_binary_and_void(tmp_path: Path, kind: str) -> None:
    async def body(pool: Pool) -> None:
        result = await pool.call(call({"a": [1, 2.5, "é"], "b": None}))
        assert result.content_type == "json"
        assert json.loads(result.payload) == {"got": {"a": [1, 2.5, "é"], "b": None}}
        assert result.payload.isascii()
        result = await pool.call(call("hi", "text"))
        assert (result.content_type, result.payload, result.stdout) == ("text", b"HI", "echo hi\n")
        data = bytes(range(256))
        result = await pool.call(call(data, "binary"))
        assert (result.content_type, result.payload) == ("binary", data[::-1])
        result = await pool.call(call(None))
        assert (result.content_type, result.payload) == ("void", b"")
        assert result.duration >= 0

    run_with_pool(tmp_path, make_spec(tmp_path, kind), body)


def test_invalid_input_is_the_callers_error_and_the_worker_serves_on(
    tmp_path: Path, kind: str
) -> None:
    async def body(pool: Pool) -> None:
        with pytest.raises(InvalidInput):
            await pool.call(CallRequest("bad", "json", b"{nope", 5.0))
        with pytest.raises(InvalidInput):
            await pool.call(CallRequest("bad", "text", b"\xff\xfe", 5.0))
        assert (await pool.call(call("ok", "text"))).payload == b"OK"

    run_with_pool(tmp_path, make_spec(tmp_path, kind), body)


def test_batch_uses_predict_batch_and_keeps_order(tmp_path: Path, kind: str) -> None:
    async def body(pool: Pool) -> None:
        # Occupy the worker so that the next calls queue up, then go out together.
        slow = asyncio.ensure_future(pool.call(call("slow", "text", rid="slow")))
        await asyncio.sleep(0.1)
        calls = [pool.call(call(i, rid=f"r{i}")) for i in range(6)]
        calls.append(pool.call(call("x", "text", rid="t")))
        calls.append(pool.call(call("fail", "text", rid="f")))
        results = await asyncio.gather(*calls, return_exceptions=True)
        for i in range(6):
            assert json.loads(results[i].payload) == {"got": i}  # type: ignore[union-attr]
        assert results[6].payload == b"X"  # type: ignore[union-attr]
        assert results[6].stdout == ""  # type: ignore[union-attr] - a batch prints to the log
        assert isinstance(results[7], ModelError)
        await slow
        sizes = json.loads((await pool.call(call("sizes", "text"))).payload)
        assert max(sizes) == 4  # max_batch
        assert "batch output goes to the log" in pool.spec.log_path.read_text()

    run_with_pool(tmp_path, make_spec(tmp_path, kind, max_batch=4), body)


def test_tensors_fixed_size(tmp_path: Path, kind: str) -> None:
    raw = struct.pack("<6f", 1, 2, 3, 4, 5, 6.5)

    async def body(pool: Pool) -> None:
        result = await pool.call(tensors_call([("x", "FP32", [2, 3], raw)], output_names=["y"]))
        assert result.content_type == "tensors"
        assert result.tensors == [{"name": "y", "datatype": "FP32", "shape": [2, 3], "length": 24}]
        assert struct.unpack("<6f", result.payload) == (2, 4, 6, 8, 10, 13)
        a, b = struct.pack("<3i", 1, 2, 3), struct.pack("<3i", 10, 20, -30)
        result = await pool.call(
            tensors_call([("a", "INT32", [3], a), ("b", "INT32", [3], b)], input_form="dict")
        )
        assert result.tensors == [{"name": "sum", "datatype": "INT32", "shape": [3], "length": 12}]
        assert struct.unpack("<3i", result.payload) == (11, 22, -27)

    run_with_pool(tmp_path, make_spec(tmp_path, kind), body)


def test_tensors_bytes_and_bad_descriptors(tmp_path: Path, kind: str) -> None:
    words = b"".join(struct.pack("<I", len(w)) + w for w in (b"hello", b"\x00\xff"))

    async def body(pool: Pool) -> None:
        result = await pool.call(tensors_call([("w", "BYTES", [2], words)]))
        assert result.tensors == [
            {"name": "output_0", "datatype": "INT64", "shape": [2], "length": 16}
        ]
        assert struct.unpack("<2q", result.payload) == (5, 2)
        with pytest.raises(InvalidInput):  # 8 bytes cannot be FP32 of shape [3]
            await pool.call(tensors_call([("x", "FP32", [3], b"\0" * 8)]))
        assert (await pool.call(call("ok", "text"))).payload == b"OK"

    run_with_pool(tmp_path, make_spec(tmp_path, kind), body)


def test_model_error_carries_type_stacktrace_and_stdout(tmp_path: Path, kind: str) -> None:
    async def body(pool: Pool) -> None:
        with pytest.raises(ModelError) as info:
            await pool.call(call("fail", "text"))
        details = info.value.details
        assert info.value.message == "bad input: fail"
        assert details["error_type"] == ERROR_TYPES[kind]
        assert MODEL_FILES[kind] in details["stacktrace"]
        assert "bad input: fail" in details["stacktrace"]
        assert str(tmp_path) not in details["stacktrace"]  # no server paths reach callers
        assert details["stdout"] == "before failure\n"
        assert (await pool.call(call("ok", "text"))).payload == b"OK"  # it serves on

    run_with_pool(tmp_path, make_spec(tmp_path, kind), body)


def test_load_error_is_model_load_failed(tmp_path: Path, kind: str) -> None:
    spec = make_spec(tmp_path, kind, models.LOAD_ERROR[kind])

    async def main() -> None:
        pool = Pool(spec, LocalBackend(), tmp_path / "data")
        with pytest.raises(ModelLoadFailed) as info:
            await pool.start()
        assert info.value.message == "weights missing"
        assert "weights missing" in info.value.details["stacktrace"]
        assert "loading..." in info.value.details["log_tail"]  # load output goes to the log

    asyncio.run(main())


def test_timeout_kills_and_replaces_the_worker(tmp_path: Path, kind: str) -> None:
    async def body(pool: Pool) -> None:
        started = time.perf_counter()
        with pytest.raises(CallTimeout):
            await pool.call(call("sleep", "text", timeout=0.5))
        assert time.perf_counter() - started < 2.0
        assert (await pool.call(call("ok", "text"))).payload == b"OK"
        assert pool.stats().restarts == 1

    run_with_pool(tmp_path, make_spec(tmp_path, kind), body)


def test_crash_is_worker_died_and_the_pool_recovers(tmp_path: Path, kind: str) -> None:
    async def body(pool: Pool) -> None:
        with pytest.raises(WorkerDied) as info:
            await pool.call(call("die", "text", timeout=20))
        assert info.value.details["exit_status"] == 3
        assert (await pool.call(call("ok", "text", timeout=20))).payload == b"OK"
        assert pool.stats().restarts == 1

    run_with_pool(tmp_path, make_spec(tmp_path, kind), body)


def test_serves_in_the_sandbox_with_a_memory_limit(tmp_path: Path, kind: str) -> None:
    if not sandbox_status().available:
        pytest.skip(f"bwrap unavailable: {sandbox_status().reason}")
    spec = make_spec(tmp_path, kind, sandbox=True, memory_bytes=1 << 30)

    async def body(pool: Pool) -> None:
        result = await pool.call(call("hi", "text"))
        assert (result.payload, result.stdout) == (b"HI", "echo hi\n")
        assert json.loads((await pool.call(call([1]))).payload) == {"got": [1]}

    run_with_pool(tmp_path, spec, body)


def test_running_out_of_memory_is_worker_died(tmp_path: Path, kind: str) -> None:
    spec = make_spec(tmp_path, kind, memory_bytes=384 << 20)

    async def body(pool: Pool) -> None:
        with pytest.raises(WorkerDied):
            await pool.call(call("hog", "text", timeout=30))
        assert (await pool.call(call("ok", "text", timeout=20))).payload == b"OK"

    run_with_pool(tmp_path, spec, body)


def test_a_call_past_its_cpu_limit_is_worker_died_naming_it(tmp_path: Path, kind: str) -> None:
    spec = make_spec(tmp_path, kind, cpu_seconds=1)

    async def body(pool: Pool) -> None:
        for _ in range(3):  # the limit is per call: calls that add up past it still pass
            assert (await pool.call(call("slow", "text"))).payload == b"SLOW"
        with pytest.raises(WorkerDied) as died:
            await pool.call(call("spin", "text", timeout=30))
        assert died.value.details["limit"] == "cpu_time", died.value.details
        assert "CPU-time limit of 1 s" in died.value.message
        assert (await pool.call(call("ok", "text", timeout=20))).payload == b"OK"

    run_with_pool(tmp_path, spec, body)


def test_frame_level_rules(tmp_path: Path, kind: str) -> None:
    """What the pool never sends, straight through the backend: unknown messages and malformed
    batches are answered with ``protocol_error``; ``shutdown`` ends the worker with status 0,
    and a frame with another magic ends it with status 2."""
    spec = make_spec(tmp_path, kind)

    async def main() -> None:
        backend = LocalBackend()
        worker = await backend.start(spec, tmp_path / "data")
        header, payload = await worker.read_frame()
        assert (header["type"], header["protocol"], payload) == ("ready", 1, b"")
        await worker.send_frame({"type": "bogus", "id": "z", "future_field": 1})
        header, _ = await worker.read_frame()
        assert (header["type"], header["id"], header["error"]["code"]) == (
            "error", "z", "protocol_error",
        )  # fmt: skip
        await worker.send_frame({"type": "call_batch", "items": "nope"})
        header, _ = await worker.read_frame()
        assert (header["type"], header["id"], header["error"]["code"]) == (
            "error", None, "protocol_error",
        )  # fmt: skip
        items = [{"id": "a", "content_type": "json", "length": 2, "extra": True},
                 {"id": "b", "content_type": "json", "length": 3}]  # fmt: skip
        await worker.send_frame({"type": "call_batch", "items": items}, b"[]{x}")
        header, payload = await worker.read_frame()
        assert header["type"] == "batch_result"
        assert header["items"][0]["content_type"] == "json"
        assert header["items"][1]["error"]["code"] == "invalid_input"
        assert json.loads(payload) == {"got": []}
        await worker.send_frame({"type": "shutdown"})
        assert await asyncio.wait_for(worker.wait(), 10) == 0

        worker = await backend.start(spec, tmp_path / "data")
        await worker.read_frame()
        worker._writer.write(b"XXXX" + bytes(12))  # a raw, broken frame on purpose
        assert await asyncio.wait_for(worker.wait(), 10) == 2

    asyncio.run(main())
