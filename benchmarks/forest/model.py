"""The heavy benchmark model: a random forest of 200 trees over 32 features.

``predict`` takes a list of 32 numbers and answers ``{"label": int}``; ``predict_batch`` does the
same for a list of such lists in one forest evaluation, which is where batching pays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np

HERE = Path(__file__).resolve().parent


class Forest:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else HERE / "model.joblib"
        self.model: Any = None

    def load(self) -> None:
        self.model = joblib.load(self.path)
        self.model.set_params(n_jobs=1)

    def predict(self, features: list[float]) -> dict[str, int]:
        return self.predict_batch([features])[0]

    def predict_batch(self, inputs: list[list[float]]) -> list[dict[str, int]]:
        rows = np.asarray(inputs, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != 32:
            raise ValueError("each input must be a list of 32 numbers")
        return [{"label": int(label)} for label in self.model.predict(rows)]
