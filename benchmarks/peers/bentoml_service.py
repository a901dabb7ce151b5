"""The benchmark model as a BentoML 1.4 service, the way BentoML documents one.

    PEER_MODEL_DIR=DIR PEER_CLASS=IrisClassifier bentoml serve bentoml_service:Plain
    ... bentoml serve bentoml_service:Batched      # adaptive batching (batchable=True)

``Plain.predict`` takes ``{"features": INPUT}``; ``Batched.predict`` takes ``{"inputs": [INPUT]}``
and BentoML gathers concurrent requests into one call of the model's ``predict_batch``.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import bentoml


def _load() -> Any:
    model_dir = os.environ["PEER_MODEL_DIR"]
    os.chdir(model_dir)
    sys.path.insert(0, model_dir)
    model = getattr(importlib.import_module("model"), os.environ["PEER_CLASS"])()
    model.load()
    return model


@bentoml.service(workers=1)
class Plain:
    def __init__(self) -> None:
        self.model = _load()

    @bentoml.api
    def predict(self, features: Any) -> Any:
        return self.model.predict(features)


@bentoml.service(workers=1)
class Batched:
    def __init__(self) -> None:
        self.model = _load()

    @bentoml.api(batchable=True, max_batch_size=32, max_latency_ms=1000)
    def predict(self, inputs: list[Any]) -> list[Any]:
        return list(self.model.predict_batch(inputs))
