"""Scoring an answer against the ground truth: a ``label`` is compared for equality with the
prediction (classification), a ``value`` gives the prediction's absolute error (regression).
The prediction is the output itself, or, for an object, its ``label`` (or ``value``) field,
else its ``prediction`` field."""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["NO_PREDICTION", "number", "prediction", "same", "score"]

NO_PREDICTION = object()
"""What :func:`prediction` returns for an object with no field it knows."""


def prediction(output: Any, field: str) -> Any:
    """What ``output`` predicts: itself, or an object's ``field`` (``label`` or ``value``) or
    ``prediction``; a sentinel (not scorable) for an object with neither."""
    if isinstance(output, dict):
        for key in (field, "prediction"):
            if key in output:
                return output[key]
        return NO_PREDICTION
    return output


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def same(a: Any, b: Any) -> bool:
    """Equal as JSON values: ``1`` is ``1.0``, but ``true`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if number(a) is not None and number(b) is not None:
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def score(output: str | None, label: Any, value: float | None) -> tuple[bool | None, float | None]:
    """(correct, absolute error) of a recorded output (JSON text) against the ground truth;
    None where it cannot be scored."""
    if output is None:
        return None, None
    answer = json.loads(output)
    if value is None:
        predicted = prediction(answer, "label")
        return (None if predicted is NO_PREDICTION else same(predicted, label)), None
    predicted_value = number(prediction(answer, "value"))
    return None, None if predicted_value is None else abs(predicted_value - value)
