"""Environment isolation demo: this model pins scikit-learn==1.7.2; sklearn-old pins 1.5.2.

Both are served side by side by one Algora, each in its own environment. The model needs no
files: it fits a tiny classifier the first time it is called and answers with the
scikit-learn version that actually ran it.
"""

from __future__ import annotations

from functools import cache
from typing import TypedDict

import sklearn
from sklearn.tree import DecisionTreeClassifier

# Two well separated clusters of 2-D points, labelled 0 and 1.
_X = [[0.0, 0.0], [0.5, 0.2], [0.2, 0.6], [3.0, 3.2], [3.5, 2.8], [2.8, 3.6]]
_Y = [0, 0, 0, 1, 1, 1]
DEFAULT_INPUT = [[0.0, 0.0], [3.0, 3.0]]


class Result(TypedDict):
    sklearn_version: str
    prediction: list[int]


@cache
def _model() -> DecisionTreeClassifier:
    # A tree needs no SciPy optimizer, so old scikit-learn keeps working with new SciPy.
    return DecisionTreeClassifier(random_state=0).fit(_X, _Y)


def apply(input: list[list[float]] | None = None) -> Result:
    """Classify 2-D points (cluster 0 near the origin, cluster 1 near (3, 3))."""
    rows = DEFAULT_INPUT if input is None else input
    if not isinstance(rows, list) or not all(
        isinstance(row, list) and len(row) == 2 for row in rows
    ):
        raise ValueError("input must be a list of [x, y] points, e.g. [[0, 0], [3, 3]]")
    prediction = [int(label) for label in _model().predict(rows)] if rows else []
    return {"sklearn_version": sklearn.__version__, "prediction": prediction}
