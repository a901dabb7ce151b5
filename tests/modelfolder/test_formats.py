"""Saved-model formats are recognised from the content of a file, never from its name, and
random or damaged bytes are never taken for a model."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algora.modelfolder.formats import FORMATS, detect, onnx_external_files

from ..helpers import matmul_onnx_model, saved_models


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One real file of each format, each under a name that says nothing of its format."""
    import joblib
    import xgboost

    made = saved_models()
    root = tmp_path_factory.mktemp("formats")
    files = {
        "joblib": made.make_sklearn(root / "joblib"),
        "pickle": made.make_sklearn(root / "pickle", pickled=True),
        "skops": made.make_sklearn(root / "skops", skops=True),
        "xgboost-json": made.make_xgboost(root / "xgboost-json"),
        "xgboost-ubj": made.make_xgboost(root / "xgboost-ubj", ubj=True),
        "lightgbm": made.make_lightgbm(root / "lightgbm"),
        "onnx": made.make_onnx(root / "onnx"),
    }
    model = joblib.load(files["joblib"])
    for compress in ("zlib", "gzip", "bz2", "xz"):
        path = root / f"joblib-{compress}"
        joblib.dump(model, path, compress=(compress, 3))
        files[f"joblib ({compress})"] = path
    raw = root / "joblib-raw"
    joblib.dump(model, raw)
    files["joblib (uncompressed)"] = raw
    booster = xgboost.Booster(model_file=str(files["xgboost-json"]))
    files["xgboost-json (booster)"] = root / "booster"
    booster.save_model(str(root / "booster.json"))
    (root / "booster.json").rename(files["xgboost-json (booster)"])
    renamed: dict[str, Path] = {}
    for index, (kind, path) in enumerate(files.items()):
        blind = root / f"file{index}.bin"
        blind.write_bytes(path.read_bytes())
        renamed[kind] = blind
    return renamed


def _format_of(kind: str) -> str:
    return kind.partition(" ")[0]


def test_each_real_artifact_is_detected_whatever_its_name(artifacts: dict[str, Path]) -> None:
    for kind, path in artifacts.items():
        assert detect(path) == _format_of(kind), kind
    assert {_format_of(k) for k in artifacts} == set(FORMATS) - ELSEWHERE


ELSEWHERE = {"torchscript", "torch-state-dict", "sentence-transformers", "mlflow"}
"""Formats tested in their own modules (test_torch_formats.py, test_embedding_formats.py,
test_mlflow_formats.py)."""


def test_ordinary_files_are_no_model(tmp_path: Path) -> None:
    samples = {
        "readme": b"# my model\n\nIt predicts.\n",
        "config.json": b'{"learning_rate": 0.1, "version": [1]}',
        "requirements": b"scikit-learn==1.7.2\n",
        "empty": b"",
        "plain data pickle": pickle.dumps({"a": [1, 2, 3]}),
        "protocol 0 pickle": pickle.dumps(ValueError("x"), protocol=0),
        "zip": _zip_bytes(tmp_path),
        "gzip text": __import__("gzip").compress(b"hello world" * 100),
    }
    for label, data in samples.items():
        path = tmp_path / "sample"
        path.write_bytes(data)
        assert detect(path) is None, label


def _zip_bytes(tmp_path: Path) -> bytes:
    import zipfile

    path = tmp_path / "plain.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("schema.json", "[1, 2]")
    return path.read_bytes()


def _detected(folder: Path, data: bytes) -> str | None:
    path = folder / "probe"
    path.write_bytes(data)
    return detect(path)


# Each format's first bytes, to give random tails the best chance of being misread.
PREFIXES = [
    b"",
    b"\x80\x04\x95",
    b"\x80\x02c",
    b"\x78\x9c",
    b"\x1f\x8b\x08\x00",
    b"PK\x03\x04",
    b"{",
    b'{"learner": {',
    b"{L\x00\x00\x00\x00\x00\x00\x00\x07learner",
    b"\x08\x07\x12",
    b"\x08\x08:",
    b"tree\n",
]


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.sampled_from(PREFIXES), tail=st.binary(max_size=512))
def test_random_bytes_are_never_a_model(scratch: Path, prefix: bytes, tail: bytes) -> None:
    assert _detected(scratch, prefix + tail) is None


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_artifacts_are_never_another_format(
    scratch: Path, artifacts: dict[str, Path], data: st.DataObject
) -> None:
    kind = data.draw(st.sampled_from(sorted(artifacts)))
    original = artifacts[kind].read_bytes()
    cut = data.draw(st.integers(min_value=0, max_value=len(original)))
    flip = data.draw(st.integers(min_value=0, max_value=max(len(original) - 1, 0)))
    damaged = bytearray(original[:cut])
    if flip < len(damaged):
        damaged[flip] ^= 0xFF
    assert _detected(scratch, bytes(damaged)) in (None, _format_of(kind))


def test_onnx_external_data_locations_are_read(tmp_path: Path) -> None:
    import onnx

    model = matmul_onnx_model()
    onnx.save(
        model,
        tmp_path / "model.onnx",
        save_as_external_data=True,
        location="weights.bin",
        size_threshold=0,
    )
    assert detect(tmp_path / "model.onnx") == "onnx"
    assert onnx_external_files(tmp_path / "model.onnx") == ["weights.bin"]
