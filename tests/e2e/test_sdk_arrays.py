"""Arrays end to end: the SDK sends a NumPy array as raw tensors and gets arrays back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from algora.errors import InvalidInput
from algora.sdk import tensors

from ..conftest import in_process

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tensors"


def test_an_array_goes_as_raw_bytes_and_comes_back_as_arrays(tmp_path: Path) -> None:
    with in_process(tmp_path / "data") as gw:
        gw.client.publish(EXAMPLE)
        model = gw.client.model("admin/iris-tensors")
        rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
        answer = model.call(rows)
        assert set(answer) == {"probabilities", "species"}
        assert answer["probabilities"].dtype == np.float32
        assert answer["probabilities"].shape == (2, 3)
        assert list(answer["species"]) == ["setosa", "virginica"]
        # the same model over JSON answers the same
        as_json = gw.client.model("admin/iris-tensors").call(rows.tolist())
        assert as_json["species"] == ["setosa", "virginica"]
        with pytest.raises(InvalidInput, match="features"):
            model.call(np.zeros((2, 3), dtype=np.float32))  # not (n, 4)


def test_the_request_is_json_then_raw_tensors_and_bytes_are_length_prefixed() -> None:
    body, length = tensors.encode_request(
        [("x", np.arange(6, dtype=np.int64).reshape(2, 3)), ("s", np.array(["a", "bc"]))]
    )
    header = body[:length].decode()
    assert '"datatype": "INT64"' in header and '"shape": [2, 3]' in header
    raw = body[length:]
    assert raw[:48] == np.arange(6, dtype="<i8").tobytes()
    assert raw[48:] == b"\x01\x00\x00\x00a\x02\x00\x00\x00bc"
    with pytest.raises(InvalidInput, match="complex"):
        tensors.encode_request([("z", np.zeros(2, dtype=np.complex64))])
