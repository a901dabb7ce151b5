"""Checks for the iris-tensors example. Run with: python -m pytest test_model.py"""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _import(name: str):
    """Import a module of this folder under a unique name (examples share file names)."""
    spec = importlib.util.spec_from_file_location(
        f"algora_example_tensors_{name}", HERE / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


model = _import("model")


def test_predicts_each_species_from_its_centroid() -> None:
    answer = model.NearestCentroid().predict(model.CENTROIDS)
    assert answer["species"].tolist() == ["setosa", "versicolor", "virginica"]
    assert answer["probabilities"].dtype == np.float32
    assert np.allclose(answer["probabilities"].sum(axis=1), 1)


def test_takes_a_read_only_array_as_the_worker_hands_it() -> None:
    features = np.frombuffer(np.array([6.7, 3.0, 5.2, 2.3], dtype="<f4").tobytes(), "<f4")
    answer = model.NearestCentroid().predict(features.reshape(1, 4))
    assert answer["species"].tolist() == ["virginica"]


def test_manifest_declares_what_predict_returns() -> None:
    manifest = tomllib.loads((HERE / "algora.toml").read_text())
    answer = model.NearestCentroid().predict(manifest["example"]["input"])
    declared = {o["name"]: o for o in manifest["model"]["outputs"]}
    assert set(answer) == set(declared)
    assert answer["probabilities"].shape == (1, 3)
    assert answer["species"].tolist() == ["setosa"]
