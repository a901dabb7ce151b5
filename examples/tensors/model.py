"""Iris species by nearest centroid: NumPy arrays in, NumPy arrays out.

Over the Open Inference Protocol (``/v2/models/admin/iris-tensors/infer``) the worker hands
``predict`` the ``features`` tensor as a read-only ``float32`` array of shape ``(n, 4)`` (the
only declared input, so the array itself) and sends the returned arrays back as the declared
outputs, as raw bytes: no JSON lists on the way. A JSON call (the native or Algorithmia API)
gets a list of lists, which ``np.asarray`` takes as well, and its result back as JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SPECIES = np.array(["setosa", "versicolor", "virginica"], dtype=object)
# The mean sepal length, sepal width, petal length and petal width (cm) of each species in
# Fisher's iris data.
CENTROIDS = np.array(
    [
        [5.006, 3.428, 1.462, 0.246],
        [5.936, 2.770, 4.260, 1.326],
        [6.588, 2.974, 5.552, 2.026],
    ],
    dtype=np.float32,
)


class NearestCentroid:
    def predict(self, features: Any) -> dict[str, np.ndarray]:
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != CENTROIDS.shape[1]:
            raise ValueError(f"features must have shape (n, 4), not {x.shape}")
        distances = np.linalg.norm(x[:, None, :] - CENTROIDS[None, :, :], axis=2)
        scores = np.exp(-distances)
        probabilities = (scores / scores.sum(axis=1, keepdims=True)).astype(np.float32)
        return {
            "probabilities": probabilities,
            "species": SPECIES[probabilities.argmax(axis=1)],
        }
