"""Checks for the sklearn-new example. Run with: python -m pytest test_model.py

Works with any recent scikit-learn; the pin itself is checked only in an environment
installed from requirements.txt (scikit-learn==1.7.2).
"""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest
import sklearn

HERE = Path(__file__).resolve().parent
PINNED = "1.7.2"


def _import(name: str):
    """Import a module of this folder under a unique name (examples share file names)."""
    spec = importlib.util.spec_from_file_location(
        f"algora_example_sklearn_new_{name}", HERE / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


model = _import("model")


def test_reports_the_running_version() -> None:
    result = model.apply([[0.1, 0.1], [3.2, 3.1]])
    assert result == {"sklearn_version": sklearn.__version__, "prediction": [0, 1]}


def test_default_and_empty_input() -> None:
    assert model.apply()["prediction"] == [0, 1]
    assert model.apply(None)["prediction"] == [0, 1]
    assert model.apply([])["prediction"] == []


def test_manifest_example() -> None:
    manifest = tomllib.loads((HERE / "algora.toml").read_text())
    assert manifest["model"]["entrypoint"] == "model:apply"
    assert model.apply(manifest["example"]["input"])["prediction"] == [0, 1]


@pytest.mark.parametrize("bad", [[[1.0]], [1.0, 2.0], "0,0", {"x": 0}])
def test_bad_input_is_rejected(bad) -> None:
    with pytest.raises(ValueError, match="list of"):
        model.apply(bad)


def test_requirements_pin() -> None:
    assert (HERE / "requirements.txt").read_text() == f"scikit-learn=={PINNED}\n"


@pytest.mark.skipif(sklearn.__version__ != PINNED, reason=f"needs scikit-learn=={PINNED}")
def test_runs_with_the_pinned_version() -> None:
    assert model.apply()["sklearn_version"] == PINNED
