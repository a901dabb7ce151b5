"""The MLflow runtime, in-process with the test environment's mlflow: rows, one row and an
object of columns get the pyfunc model's own predictions, and a batch runs as one frame."""

from __future__ import annotations

from pathlib import Path

import pytest

from algora.runtime.loader import load_model
from algora.runtime.saved import InvalidRows

from ..helpers import saved_models

mlflow_pyfunc = pytest.importorskip("mlflow.pyfunc")

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [6.0, 2.2, 5.0, 1.5]]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runtime-mlflow")
    saved_models().make_mlflow(root / "iris-mlflow")
    return root / "iris-mlflow"


def test_predictions_are_the_pyfunc_models_own(folder: Path) -> None:
    import pandas as pd

    script = saved_models()
    expected = (
        mlflow_pyfunc.load_model(str(folder))
        .predict(pd.DataFrame(ROWS, columns=script.FEATURES))
        .tolist()
    )
    model = load_model(folder, "saved:mlflow:MLmodel")
    assert model.predict(ROWS) == {"predictions": expected}
    assert model.predict(ROWS[1]) == {"prediction": expected[1]}
    columns = {name: [row[i] for row in ROWS] for i, name in enumerate(script.FEATURES)}
    assert model.predict(columns) == {"predictions": expected}
    named = dict(zip(script.FEATURES, ROWS[2], strict=True))
    assert model.predict(named) == {"prediction": expected[2]}
    assert model.predict_batch is not None
    assert model.predict_batch([ROWS[:2], ROWS[2]]) == [
        {"predictions": expected[:2]},
        {"prediction": expected[2]},
    ]
    with pytest.raises(InvalidRows, match="the model's 4 columns"):
        model.predict([[1.0, 2.0]])
    with pytest.raises(InvalidRows, match="as many values"):
        model.predict({"a": [1], "b": [1, 2]})
