"""Checks for the sklearn-pipeline example. Run with: python -m pytest test_model.py

A pipeline has no code: these check that its steps name this folder's sibling examples and
that its output reads only what its steps answer.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
PIPELINE = tomllib.loads((HERE / "pipeline.toml").read_text())


def test_steps_are_the_sibling_examples() -> None:
    names = {
        tomllib.loads((folder / "algora.toml").read_text())["model"]["name"]
        for folder in HERE.parent.iterdir()
        if (folder / "algora.toml").is_file()
    }
    models = [step["model"] for step in PIPELINE["steps"]]
    assert models == ["sklearn-old", "sklearn-new", "compare-votes"]
    assert set(models) <= names


def test_output_reads_the_last_step() -> None:
    output = PIPELINE["pipeline"]["output"]
    assert all(value.startswith("$.steps.compare.output.") for value in output.values())
