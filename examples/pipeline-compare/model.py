"""The plain-Python step of the sklearn-pipeline example: compares two classifiers' answers.

It gets what sklearn-old and sklearn-new answered (each ``{sklearn_version, prediction}``) and
says where they agree. It imports nothing but the standard library, so its environment has no
scikit-learn at all: each step of a pipeline runs in its own model's environment.
"""

from __future__ import annotations

from typing import TypedDict


class Vote(TypedDict):
    sklearn_version: str
    prediction: list[int]


class Votes(TypedDict):
    old: Vote
    new: Vote


class Comparison(TypedDict):
    prediction: list[int | None]
    """The label both gave, or None where they disagree."""
    agree: bool
    sklearn_versions: list[str]


def apply(input: Votes) -> Comparison:
    old, new = input["old"], input["new"]
    if len(old["prediction"]) != len(new["prediction"]):
        raise ValueError("the two classifiers answered for different numbers of points")
    pairs = zip(old["prediction"], new["prediction"], strict=True)
    merged = [a if a == b else None for a, b in pairs]
    return {
        "prediction": merged,
        "agree": None not in merged,
        "sklearn_versions": [old["sklearn_version"], new["sklearn_version"]],
    }
