"""Checks for the compare-votes step. Run with: python -m pytest test_model.py"""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _import(name: str):
    """Import a module of this folder under a unique name (examples share file names)."""
    spec = importlib.util.spec_from_file_location(
        f"algora_example_pipeline_compare_{name}", HERE / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


model = _import("model")


def vote(version: str, prediction: list[int]) -> dict:
    return {"sklearn_version": version, "prediction": prediction}


def test_agreement_keeps_the_labels() -> None:
    answer = model.apply({"old": vote("1.5.2", [0, 1]), "new": vote("1.7.2", [0, 1])})
    assert answer == {"prediction": [0, 1], "agree": True, "sklearn_versions": ["1.5.2", "1.7.2"]}


def test_disagreement_is_none() -> None:
    answer = model.apply({"old": vote("a", [0, 1]), "new": vote("b", [0, 0])})
    assert answer["prediction"] == [0, None] and answer["agree"] is False


def test_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="different numbers"):
        model.apply({"old": vote("a", [0]), "new": vote("b", [0, 1])})


def test_manifest_example() -> None:
    manifest = tomllib.loads((HERE / "algora.toml").read_text())
    assert model.apply(manifest["example"]["input"])["agree"] is True
