"""Tensors in the frame protocol: the codec (standard library and NumPy) and a real worker."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from algora.runtime import codec, tensors
from algora.runtime.tensors import TensorError, run_stacked

from .test_runtime import Worker

_RANGES = {
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1),
    "UINT64": (0, 2**64 - 1),
}


def _elements(datatype: str) -> st.SearchStrategy[Any]:
    if datatype == "BOOL":
        return st.booleans()
    if datatype in _RANGES:
        low, high = _RANGES[datatype]
        return st.integers(low, high)
    if datatype == "BYTES":
        return st.binary(max_size=20)
    width = {"FP16": 16, "FP32": 32, "FP64": 64}[datatype]
    return st.floats(width=width, allow_nan=False)


@st.composite
def _tensor(draw: st.DrawFn) -> tuple[str, list[int], list[Any]]:
    datatype = draw(st.sampled_from(sorted(tensors.DATATYPES)))
    shape = draw(st.lists(st.integers(0, 4), max_size=3))
    values = draw(
        st.lists(
            _elements(datatype),
            min_size=tensors.element_count(shape),
            max_size=tensors.element_count(shape),
        )
    )
    return datatype, shape, values


@given(_tensor())
def test_pack_unpack_round_trip(tensor: tuple[str, list[int], list[Any]]) -> None:
    datatype, shape, values = tensor
    raw = tensors.pack(datatype, values)
    assert tensors.unpack(datatype, raw, len(values)) == values
    size = tensors.byte_size(datatype, shape)
    assert size is None or size == len(raw)


@given(_tensor())
def test_nest_then_flatten_round_trip(tensor: tuple[str, list[int], list[Any]]) -> None:
    _datatype, shape, values = tensor
    if not shape or 0 in shape:
        return
    assert tensors.flatten(tensors.nest(values, shape), shape) == values


@given(_tensor())
def test_numpy_arrays_round_trip_through_the_worker_codec(
    tensor: tuple[str, list[int], list[Any]],
) -> None:
    datatype, shape, values = tensor
    raw = tensors.pack(datatype, values)
    descriptor = {"name": "x", "datatype": datatype, "shape": shape, "length": len(raw)}
    array = tensors.to_model(descriptor, memoryview(raw))
    assert isinstance(array, np.ndarray) and list(array.shape) == shape
    again, body = tensors.from_model(array, "x")
    assert again == descriptor
    assert body == raw


def test_fixed_size_arrays_are_zero_copy_views() -> None:
    raw = struct.pack("<4f", 1, 2, 3, 4)
    descriptor = {"name": "x", "datatype": "FP32", "shape": [2, 2], "length": 16}
    array = tensors.to_model(descriptor, memoryview(raw))
    assert array.dtype == np.float32 and not array.flags.writeable
    assert array.tolist() == [[1, 2], [3, 4]]


def test_without_numpy_the_model_gets_nested_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tensors, "_numpy_module", [None])
    raw = tensors.pack("INT32", [1, 2, 3, 4, 5, 6])
    descriptor = {"name": "x", "datatype": "INT32", "shape": [2, 3], "length": len(raw)}
    assert tensors.to_model(descriptor, memoryview(raw)) == [[1, 2, 3], [4, 5, 6]]
    words = tensors.pack("BYTES", ["a", "bc"])
    descriptor = {"name": "w", "datatype": "BYTES", "shape": [2], "length": len(words)}
    assert tensors.to_model(descriptor, memoryview(words)) == [b"a", b"bc"]


def test_python_results_take_a_datatype_from_their_values() -> None:
    assert tensors.from_model([[1, 2], [3, 4]], "o")[0]["datatype"] == "INT64"
    assert tensors.from_model([0.5, 1], "o")[0] == {
        "name": "o",
        "datatype": "FP64",
        "shape": [2],
        "length": 16,
    }
    assert tensors.from_model(True, "o")[0]["datatype"] == "BOOL"
    descriptor, raw = tensors.from_model(["é", b"\x00"], "o")
    assert descriptor["datatype"] == "BYTES"
    assert tensors.unpack("BYTES", raw, 2) == ["é".encode(), b"\x00"]
    with pytest.raises(TypeError, match="ragged"):
        tensors.from_model([[1, 2], [3]], "o")
    with pytest.raises(TypeError, match="mixes"):
        tensors.from_model([1, "a"], "o")
    with pytest.raises(TypeError, match="not an array"):
        tensors.from_model({1, 2}, "o")


@pytest.mark.parametrize(
    ("descriptor", "message"),
    [
        ({"name": "x", "datatype": "FP8", "shape": [1], "length": 1}, "datatype 'FP8'"),
        ({"name": "x", "datatype": "FP32", "shape": [-1], "length": 4}, "non-negative"),
        ({"name": "x", "datatype": "FP32", "shape": [3], "length": 8}, "takes 12 bytes"),
        ({"name": "", "datatype": "FP32", "shape": [1], "length": 4}, "needs a name"),
        ({"name": "x", "datatype": ["FP32"], "shape": [1], "length": 4}, "datatype"),
        ("x", "must be an object"),
    ],
)
def test_bad_descriptors_are_refused(descriptor: Any, message: str) -> None:
    with pytest.raises(TensorError, match=message):
        tensors.check_descriptor(descriptor)


def test_split_checks_lengths_against_the_payload() -> None:
    one = {"name": "a", "datatype": "UINT8", "shape": [2], "length": 2}
    assert [bytes(raw) for _d, raw in tensors.split([one], b"\x01\x02")] == [b"\x01\x02"]
    with pytest.raises(TensorError, match="past the end"):
        tensors.split([one], b"\x01")
    with pytest.raises(TensorError, match="after the last tensor"):
        tensors.split([one], b"\x01\x02\x03")


def test_bad_values_are_named() -> None:
    with pytest.raises(TensorError, match="out of range for UINT8"):
        tensors.pack("UINT8", [256], "x")
    with pytest.raises(TensorError, match=r"must be integers, not 1\.5"):
        tensors.pack("INT32", [1.5], "x")
    with pytest.raises(TensorError, match="must be true or false"):
        tensors.pack("BOOL", [1], "x")
    with pytest.raises(TensorError, match="out of range for FP16"):
        tensors.pack("FP16", [1e10], "x")
    with pytest.raises(TensorError, match="shape \\[2, 2\\] needs 4"):
        tensors.flatten([[1, 2], [3]], [2, 2], "x")
    with pytest.raises(TensorError, match="holds 1 elements; its shape says 2"):
        tensors.unpack("BYTES", tensors.pack("BYTES", ["a"]), 2, "w")
    with pytest.raises(TensorError, match="ends inside"):
        tensors.unpack("BYTES", b"\x01\x00", 1, "w")
    with pytest.raises(TensorError, match="longer than its bytes"):
        tensors.unpack("BYTES", b"\x09\x00\x00\x00ab", 1, "w")


@given(st.binary(max_size=64), st.integers(0, 8))
def test_unpack_bytes_never_fails_but_with_a_tensor_error(raw: bytes, count: int) -> None:
    try:
        values = tensors.unpack("BYTES", raw, count)
    except TensorError:
        return
    assert len(values) == count


def test_codec_answers_tensor_calls_with_tensors_and_json_calls_with_json() -> None:
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert codec.encode_answer(array, {"content_type": "json"})[0] == "json"
    kind, raw, described = codec.encode_answer(
        {"scores": array, "label": "cat"}, {"content_type": "tensors"}
    )
    assert kind == "tensors" and described is not None
    assert [(d["name"], d["datatype"], d["shape"]) for d in described] == [
        ("scores", "FP32", [2, 3]),
        ("label", "BYTES", [1]),
    ]
    assert len(raw) == 24 + 4 + 3
    _, _, named = codec.encode_answer((array, array), {"content_type": "tensors"})
    assert [d["name"] for d in named or []] == ["output_0", "output_1"]
    spec = {"content_type": "tensors", "output_names": ["y"]}
    assert [d["name"] for d in codec.encode_answer(array, spec)[2] or []] == ["y"]
    with pytest.raises(codec.ResultNotSerializable, match="object"):
        codec.encode_answer(object(), {"content_type": "tensors"})


TENSOR_MODEL = """
    import numpy as np

    class Model:
        def predict(self, inputs):
            if isinstance(inputs, dict):
                return {"sum": inputs["a"] + inputs["b"], "names": np.array(sorted(inputs))}
            return inputs * 2

        def predict_batch(self, batch):
            return [self.predict(x) for x in batch]
"""


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    started = Worker(tmp_path, TENSOR_MODEL, "model:Model")
    yield started
    if started.proc.returncode is None:
        started.proc.kill()
    started.close()


def _tensor_frame(**arrays: np.ndarray) -> tuple[list[dict[str, Any]], bytes]:
    described, bodies = [], []
    for name, array in arrays.items():
        descriptor, raw = tensors.from_model(array, name)
        described.append(descriptor)
        bodies.append(raw)
    return described, b"".join(bodies)


def test_a_worker_serves_tensor_calls_and_batches(worker: Worker) -> None:
    described, payload = _tensor_frame(x=np.array([[1.5, 2.0]], dtype=np.float16))
    worker.send(
        {"type": "call", "id": "c1", "content_type": "tensors", "tensors": described}, payload
    )
    header, body = worker.read()
    assert header["type"] == "result" and header["content_type"] == "tensors"
    assert header["tensors"] == [
        {"name": "output_0", "datatype": "FP16", "shape": [1, 2], "length": 4}
    ]
    assert struct.unpack("<2e", body) == (3.0, 4.0)

    two, both = _tensor_frame(a=np.array([1, 2]), b=np.array([10, 20]))
    items = [
        {"id": "i1", "content_type": "tensors", "tensors": two, "length": len(both)},
        {"id": "i2", "content_type": "tensors", "tensors": described, "length": len(payload),
         "output_names": ["doubled"]},
        {"id": "i3", "content_type": "tensors", "tensors": described, "length": 1},
    ]  # fmt: skip
    worker.send({"type": "call_batch", "items": items}, both + payload + b"\x00")
    header, body = worker.read()
    first, second, third = header["items"]
    assert [d["name"] for d in first["tensors"]] == ["sum", "names"]
    assert first["tensors"][0]["datatype"] == "INT64"
    assert second["tensors"][0]["name"] == "doubled"
    assert third["error"]["code"] == "invalid_input"
    assert len(body) == first["length"] + second["length"]
    assert struct.unpack_from("<2q", body) == (11, 22)


def test_a_worker_refuses_a_tensor_that_does_not_fit_its_bytes(worker: Worker) -> None:
    described = [{"name": "x", "datatype": "FP32", "shape": [2], "length": 8}]
    worker.send(
        {"type": "call", "id": "c1", "content_type": "tensors", "tensors": described}, b"\x00" * 4
    )
    header, _ = worker.read()
    assert header["type"] == "error" and header["error"]["code"] == "invalid_input"
    assert "past the end" in header["error"]["message"]


PARAMETERS_MODEL = """
    class Model:
        def predict(self, x, parameters=None):
            return [v * (parameters or {}).get("scale", 1) for v in x]

        def predict_batch(self, batch):
            return [[-1] for _ in batch]
"""


def test_parameters_reach_a_predict_that_takes_them(tmp_path: Path) -> None:
    worker = Worker(tmp_path, PARAMETERS_MODEL, "model:Model")
    try:
        described, payload = _tensor_frame(x=np.array([1, 2], dtype=np.int64))
        call = {"type": "call", "id": "c1", "content_type": "tensors", "tensors": described}
        worker.send({**call, "parameters": {"scale": 10}}, payload)
        _header, body = worker.read()
        assert struct.unpack("<2q", body) == (10, 20)
        worker.send(call, payload)  # no parameters: predict(x) as ever
        assert struct.unpack("<2q", worker.read()[1]) == (1, 2)
        item = {"content_type": "tensors", "tensors": described, "length": len(payload)}
        items = [{**item, "id": "a", "parameters": {"scale": 3}}, {**item, "id": "b"}]
        worker.send({"type": "call_batch", "items": items}, payload * 2)
        _header, body = worker.read()  # with parameters, one by one, not predict_batch
        assert struct.unpack("<4q", body) == (3, 6, 1, 2)
        worker.send({"type": "call_batch", "items": [{**item, "id": "c"}] * 2}, payload * 2)
        assert struct.unpack("<2q", worker.read()[1]) == (-1, -1)
    finally:
        worker.close()


def test_arrays_with_a_batch_dimension_run_once_stacked_and_split_back() -> None:
    calls: list[int] = []

    def predict(x: np.ndarray) -> dict[str, np.ndarray]:
        calls.append(len(x))
        return {"y": x * 2, "n": np.full(len(x), len(x))}

    parts = [np.ones((1, 2), np.float32), np.zeros((2, 2), np.float32)]
    outcomes = run_stacked(predict, parts)
    assert calls == [3] and outcomes is not None
    first, second = (outcome[0] for outcome in outcomes)  # type: ignore[index]
    assert first["y"].tolist() == [[2.0, 2.0]] and second["y"].shape == (2, 2)
    assert run_stacked(lambda x: x, [np.ones((1, 2)), np.ones((1, 3))]) is None  # shapes
    assert run_stacked(lambda x: x, [np.ones((1, 2)), np.ones((1, 2), np.int8)]) is None
    assert run_stacked(lambda x: x.sum(), parts) is None  # an answer that does not split

    def fails(x: np.ndarray) -> np.ndarray:
        raise ValueError("one of them is bad")

    assert run_stacked(fails, parts) is None  # each then gets its own outcome
