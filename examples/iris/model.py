"""Iris species classifier served by Algora.

Algora loads this class once per worker (``IrisClassifier().load()``) and then calls
``predict`` for single inputs or ``predict_batch`` for batches it has gathered. The type
hints below become the model's JSON Schema.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypedDict

import joblib
import numpy as np

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
Species = Literal["setosa", "versicolor", "virginica"]


class IrisFeatures(TypedDict):
    """Flower measurements in centimetres."""

    sepal_length: float
    sepal_width: float
    petal_length: float
    petal_width: float


class Prediction(TypedDict):
    species: Species
    probabilities: dict[str, float]


# A dict of the four named measurements, or a list of the four values in FEATURES order.
Features = IrisFeatures | list[float]


class IrisClassifier:
    def __init__(self, path: str | Path | None = None) -> None:
        # model.joblib is written next to this file by train.py (the [build] step).
        self.path = Path(path) if path is not None else Path(__file__).with_name("model.joblib")
        self.model: Any = None
        self.classes: list[str] = []

    def load(self) -> None:
        artifact = joblib.load(self.path)
        if list(artifact["features"]) != list(FEATURES):
            raise ValueError(f"{self.path} was trained on features {artifact['features']}")
        self.model = artifact["model"]
        self.classes = list(artifact["classes"])

    def predict(self, features: Features) -> Prediction:
        return self._predict(np.asarray([_row(features)], dtype=np.float64))[0]

    def predict_batch(self, inputs: list[Features]) -> list[Prediction]:
        if not inputs:
            return []
        rows = [_row(features, index) for index, features in enumerate(inputs)]
        return self._predict(np.asarray(rows, dtype=np.float64))

    def _predict(self, x: np.ndarray) -> list[Prediction]:
        if self.model is None:
            raise RuntimeError("call load() before predict()")
        probabilities = self.model.predict_proba(x)
        best = probabilities.argmax(axis=1)
        return [
            {
                "species": self.classes[int(best[i])],
                "probabilities": {
                    name: float(p) for name, p in zip(self.classes, probabilities[i], strict=True)
                },
            }
            for i in range(len(probabilities))
        ]


def _row(features: Any, index: int | None = None) -> list[float]:
    where = "" if index is None else f"input {index}: "
    if isinstance(features, dict):
        missing = [name for name in FEATURES if name not in features]
        unknown = sorted(set(features) - set(FEATURES))
        if missing or unknown:
            raise ValueError(
                f"{where}expected keys {list(FEATURES)}; missing {missing}, unknown {unknown}"
            )
        values: Sequence[Any] = [features[name] for name in FEATURES]
    elif isinstance(features, list | tuple):
        if len(features) != len(FEATURES):
            raise ValueError(
                f"{where}expected {len(FEATURES)} values {list(FEATURES)}, got {len(features)}"
            )
        values = features
    else:
        raise TypeError(
            f"{where}expected an object with {list(FEATURES)} or a list of 4 numbers, "
            f"got {type(features).__name__}"
        )
    row = []
    for name, value in zip(FEATURES, values, strict=True):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(f"{where}{name} must be a finite number, got {value!r}")
        row.append(float(value))
    return row
