"""Checks for the iris example. Run with: python -m pytest test_model.py

Needs scikit-learn (see requirements.txt) and pytest. Trains into a temporary folder, so
it neither needs nor writes model.joblib here.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tomllib
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _import(name: str):
    """Import a module of this folder under a unique name (examples share file names)."""
    spec = importlib.util.spec_from_file_location(
        f"algora_example_iris_{name}", HERE / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


model = _import("model")
train = _import("train")
MANIFEST = tomllib.loads((HERE / "algora.toml").read_text())
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
VIRGINICA = [6.7, 3.0, 5.2, 2.3]


@pytest.fixture(scope="module")
def artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("iris")
    metrics = train.train(out)
    assert metrics["test_accuracy"] >= 0.9
    return out


@pytest.fixture(scope="module")
def classifier(artifact_dir: Path):
    clf = model.IrisClassifier(artifact_dir / "model.joblib")
    clf.load()
    return clf


def test_build_writes_artifacts(artifact_dir: Path) -> None:
    assert (artifact_dir / "model.joblib").is_file()
    metrics = json.loads((artifact_dir / "metrics.json").read_text())
    assert metrics["n_train"] + metrics["n_test"] == 150


def test_default_artifact_path_is_next_to_model_py() -> None:
    assert model.IrisClassifier().path == HERE / "model.joblib"


def test_predict_named_measurements(classifier) -> None:
    result = classifier.predict(SETOSA)
    assert result["species"] == "setosa"
    assert set(result["probabilities"]) == {"setosa", "versicolor", "virginica"}
    assert sum(result["probabilities"].values()) == pytest.approx(1.0)
    assert result["probabilities"]["setosa"] > 0.9
    # Plain JSON types only: this is what the caller receives.
    assert json.loads(json.dumps(result)) == result


def test_predict_list_equals_dict(classifier) -> None:
    assert classifier.predict(list(SETOSA.values())) == classifier.predict(SETOSA)
    assert classifier.predict(VIRGINICA)["species"] == "virginica"
    assert classifier.predict([5, 3, 1, 0])["species"] == "setosa"  # integers are numbers too


def test_manifest_example_input(classifier) -> None:
    assert MANIFEST["model"]["entrypoint"] == "model:IrisClassifier"
    assert classifier.predict(MANIFEST["example"]["input"])["species"] == "setosa"


def test_predict_batch_matches_predict(classifier) -> None:
    inputs = [SETOSA, VIRGINICA, [5.9, 3.0, 4.2, 1.5]]
    batch = classifier.predict_batch(inputs)
    assert [r["species"] for r in batch] == ["setosa", "virginica", "versicolor"]
    for single, result in zip(inputs, batch, strict=True):
        expected = classifier.predict(single)
        assert result["species"] == expected["species"]
        assert result["probabilities"] == pytest.approx(expected["probabilities"])
    assert classifier.predict_batch([]) == []


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"sepal_length": 5.1}, ValueError),
        ({**SETOSA, "colour": 1.0}, ValueError),
        ([1.0, 2.0, 3.0], ValueError),
        ({**SETOSA, "petal_width": "wide"}, ValueError),
        ({**SETOSA, "petal_width": True}, ValueError),
        ([1.0, 2.0, 3.0, float("nan")], ValueError),
        ("5.1,3.5,1.4,0.2", TypeError),
        (None, TypeError),
    ],
)
def test_bad_input_is_rejected_clearly(classifier, bad, error) -> None:
    with pytest.raises(error):
        classifier.predict(bad)


def test_bad_item_in_batch_names_its_index(classifier) -> None:
    with pytest.raises(ValueError, match="input 1"):
        classifier.predict_batch([SETOSA, [1.0]])


def test_predict_before_load_fails() -> None:
    with pytest.raises(RuntimeError, match="load"):
        model.IrisClassifier("unused.joblib").predict(SETOSA)
