"""The infer messages of the Open Inference Protocol: JSON tensors and the binary extension."""

from __future__ import annotations

import contextlib
import gzip
import json
import zlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from algora.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from algora.protocols.oip.wire import (
    MAX_TENSORS,
    Declared,
    decompressed,
    parse_infer,
    render_infer,
)
from algora.runtime import tensors

LIMIT = 1 << 20


@st.composite
def _inputs(draw: st.DrawFn) -> list[tuple[str, str, list[int], list[Any]]]:
    count = draw(st.integers(1, 3))
    made = []
    for index in range(count):
        datatype = draw(st.sampled_from(["BOOL", "INT8", "UINT16", "INT64", "FP32", "BYTES"]))
        shape = draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
        size = tensors.element_count(shape)
        element = {
            "BOOL": st.booleans(),
            "INT8": st.integers(-128, 127),
            "UINT16": st.integers(0, 2**16 - 1),
            "INT64": st.integers(-(2**63), 2**63 - 1),
            "FP32": st.floats(width=32, allow_nan=False),
            "BYTES": st.text(max_size=5),
        }[datatype]
        values = draw(st.lists(element, min_size=size, max_size=size))
        made.append((f"in{index}", datatype, shape, values))
    return made


def _json_body(inputs: list[tuple[str, str, list[int], list[Any]]]) -> bytes:
    return json.dumps(
        {"inputs": [{"name": n, "datatype": d, "shape": s, "data": v} for n, d, s, v in inputs]}
    ).encode()


def _binary_body(inputs: list[tuple[str, str, list[int], list[Any]]]) -> tuple[bytes, str]:
    raws = [tensors.pack(d, v) for _n, d, _s, v in inputs]
    head = json.dumps(
        {
            "inputs": [
                {"name": n, "datatype": d, "shape": s, "parameters": {"binary_data_size": len(r)}}
                for (n, d, s, _v), r in zip(inputs, raws, strict=True)
            ]
        }
    ).encode()
    return head + b"".join(raws), str(len(head))


@given(_inputs(), st.booleans())
def test_json_and_binary_requests_carry_the_same_tensors(
    inputs: list[tuple[str, str, list[int], list[Any]]], binary_first: bool
) -> None:
    from_json = parse_infer(_json_body(inputs), None, LIMIT)
    body, length = _binary_body(inputs)
    from_binary = parse_infer(body, length, LIMIT)
    assert from_json.tensors == from_binary.tensors
    assert from_json.payload == from_binary.payload
    parts = tensors.split(from_binary.tensors, from_binary.payload)
    for (name, datatype, shape, values), (descriptor, raw) in zip(inputs, parts, strict=True):
        assert descriptor["name"] == name and descriptor["shape"] == shape
        back = tensors.unpack(datatype, raw, tensors.element_count(shape))
        if datatype == "BYTES":
            back = [b.decode() for b in back]
        assert back == values
    # ... and a response renders them back, in JSON or as binary data.
    wanted = parse_infer(json.dumps({"inputs": json.loads(_json_body(inputs))["inputs"],
                                     "parameters": {"binary_data_output": binary_first}}).encode(),
                         None, LIMIT)  # fmt: skip
    rendered, headers = render_infer(wanted, from_json.tensors, from_json.payload, "m", "1.0.0")
    if binary_first:
        head = json.loads(rendered[: int(headers["Inference-Header-Content-Length"])])
        assert rendered.endswith(from_json.payload)
        assert all("binary_data_size" in o["parameters"] for o in head["outputs"])
    else:
        doc = json.loads(rendered)
        for output, (_name, datatype, _shape, values) in zip(doc["outputs"], inputs, strict=True):
            assert output["data"] == values or datatype == "FP32"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)
_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=3) | _JSON,
        "datatype": st.sampled_from(sorted(tensors.DATATYPES)) | _JSON,
        "shape": st.lists(st.integers(-1, 3), max_size=3) | _JSON,
        "data": _JSON,
        "parameters": st.fixed_dictionaries({}, optional={"binary_data_size": st.integers(-1, 9)}),
    },
)


@given(st.lists(_FIELDS | _JSON, max_size=3), st.binary(max_size=16), st.booleans())
def test_any_request_is_parsed_or_refused_with_a_400(
    inputs: list[Any], binary: bytes, with_length: bool
) -> None:
    head = json.dumps({"inputs": inputs}).encode()
    with contextlib.suppress(InvalidInput):
        parse_infer(head + binary, str(len(head)) if with_length else None, LIMIT)


@given(st.binary(max_size=200), st.one_of(st.none(), st.integers(0, 250).map(str)))
def test_any_body_is_parsed_or_refused_with_a_400(body: bytes, length: str | None) -> None:
    with contextlib.suppress(InvalidInput):
        parse_infer(body, length, LIMIT)


def test_an_oversized_tensor_is_refused_before_its_data_is_read() -> None:
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [LIMIT], "data": []}]}
    with pytest.raises(InvalidInput, match="more than the 1048576-byte limit"):
        parse_infer(json.dumps(body).encode(), None, LIMIT)


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        ({"datatype": "FP32", "shape": [1], "data": [1.0]}, "needs a 'name'"),
        ({"name": "x", "datatype": "FP32", "shape": [-1], "data": [1.0]}, "non-negative"),
        ({"name": "x", "datatype": "FP32", "shape": [1]}, "neither 'data' nor"),
        ({"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0],
          "parameters": {"binary_data_size": 4}}, "both 'data' and binary data"),
        ({"name": "x", "datatype": "FP32", "shape": [1], "parameters": []}, "'parameters' must"),
        ({"name": "x", "datatype": "BYTES", "shape": [1], "data": [1]}, "must be strings"),
        ({"name": "x", "datatype": "INT8", "shape": [1], "data": [300]}, "out of range for INT8"),
    ],
)  # fmt: skip
def test_bad_tensors(tensor: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_infer(json.dumps({"inputs": [tensor]}).encode(), None, LIMIT)


def test_requests_name_their_id_outputs_and_unsupported_extensions() -> None:
    one = {"name": "x", "datatype": "INT8", "shape": [1], "data": [1]}
    parsed = parse_infer(
        json.dumps({"id": "r1", "inputs": [one], "outputs": [{"name": "y"}]}).encode(), None, 99
    )
    assert parsed.id == "r1" and [w.name for w in parsed.outputs] == ["y"]
    for doc, message in [
        ({"id": 5, "inputs": [one]}, "'id' must be a string"),
        ({"inputs": [one, one]}, "given twice"),
        ({"inputs": [one], "outputs": [{"name": "y", "parameters": {"classification": 2}}]},
         "classification extension"),
        ({"inputs": [one], "parameters": {"binary_data_output": "yes"}}, "true or false"),
        ([one], "JSON object"),
    ]:  # fmt: skip
        with pytest.raises(InvalidInput, match=message):
            parse_infer(json.dumps(doc).encode(), None, 99)


def test_declared_tensors_check_names_datatypes_and_shapes() -> None:
    declared = Declared.of(
        {
            "model": {
                "inputs": [
                    {"name": "a", "datatype": "FP32", "shape": [-1, 2]},
                    {"name": "b", "datatype": "INT64", "shape": [1]},
                ],
                "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
            }
        }
    )

    def infer(*tensors_: dict[str, Any], outputs: Any = None) -> Any:
        doc: dict[str, Any] = {"inputs": list(tensors_)}
        if outputs:
            doc["outputs"] = outputs
        return parse_infer(json.dumps(doc).encode(), None, LIMIT)

    a = {"name": "a", "datatype": "FP32", "shape": [3, 2], "data": [0.0] * 6}
    b = {"name": "b", "datatype": "INT64", "shape": [1], "data": [7]}
    declared.check(infer(a, b))
    with pytest.raises(InvalidInput, match="missing input b"):
        declared.check(infer(a))
    with pytest.raises(InvalidInput, match=r"has shape \[2, 3\]; the model takes \[-1, 2\]"):
        declared.check(infer({**a, "shape": [2, 3]}, b))
    with pytest.raises(InvalidInput, match="unknown output 'z'"):
        declared.check(infer(a, b, outputs=[{"name": "z"}]))
    assert Declared.of({}).inputs == [] and Declared.of({"model": None}).outputs == []


def test_type_hints_give_metadata_but_no_rules() -> None:
    hinted = Declared.of(
        {"model": {"name": "m"}},
        {
            "type": "object",
            "properties": {
                "rows": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                "label": {"type": "string"},
            },
        },
        {"type": "array", "items": {"type": "integer"}},
    )
    assert hinted.inputs == [
        {"name": "rows", "datatype": "FP64", "shape": [-1, -1]},
        {"name": "label", "datatype": "BYTES", "shape": [1]},
    ]
    assert hinted.outputs == [{"name": "output_0", "datatype": "INT64", "shape": [-1]}]
    assert hinted.input_form == "dict" and hinted.output_names == []
    anything = {"name": "other", "datatype": "INT8", "shape": [1], "data": [1]}
    hinted.check(parse_infer(json.dumps({"inputs": [anything]}).encode(), None, LIMIT))
    assert Declared.of({}, {"type": "array", "items": {"type": "boolean"}}).input_form == "array"
    unknown = Declared.of({}, {"type": "object", "properties": {"a": {}}}, {"anyOf": []})
    assert unknown.inputs == [] and unknown.outputs == [] and unknown.input_form is None


def test_compressed_bodies_are_inflated_within_the_limit() -> None:
    body = json.dumps({"inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [1]}]})
    raw = body.encode()
    assert decompressed(gzip.compress(raw), "gzip", 1000) == raw
    assert decompressed(zlib.compress(raw), "Deflate", 1000) == raw
    assert decompressed(raw, None, 1000) == raw
    with pytest.raises(PayloadTooLarge, match="inflates past"):
        decompressed(gzip.compress(b"\0" * 10_000), "gzip", 1000)
    with pytest.raises(InvalidInput, match="not valid gzip"):
        decompressed(b"not gzip", "gzip", 1000)
    with pytest.raises(InvalidInput, match="one complete"):
        decompressed(gzip.compress(raw)[:-6], "gzip", 1000)
    with pytest.raises(UnsupportedMediaType, match="'br' is not accepted"):
        decompressed(raw, "br", 1000)


def test_the_number_of_tensors_is_bounded() -> None:
    one = {"name": "x", "datatype": "INT8", "shape": [0], "data": []}
    many = [{**one, "name": f"x{i}"} for i in range(MAX_TENSORS + 1)]
    with pytest.raises(InvalidInput, match="at most 4096"):
        parse_infer(json.dumps({"inputs": many}).encode(), None, LIMIT)
    outputs = [{"name": f"y{i}"} for i in range(MAX_TENSORS + 1)]
    with pytest.raises(InvalidInput, match="at most 4096"):
        parse_infer(json.dumps({"inputs": [one], "outputs": outputs}).encode(), None, LIMIT)
