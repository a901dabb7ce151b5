"""Checks for the canary example's two versions. Run with: python -m pytest test_model.py"""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _apply(version: str) -> Callable[[dict[str, Any]], dict[str, str]]:
    """A version's ``apply``, imported under a unique name (examples share file names)."""
    spec = importlib.util.spec_from_file_location(
        f"algora_example_canary_{version}", HERE / version / "model.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.apply  # type: ignore[no-any-return]


def test_the_new_version_follows_the_truth_the_old_is_off_near_it() -> None:
    old, new = _apply("v1"), _apply("v2")
    assert new({"x": 0.55}) == {"label": "high"} != old({"x": 0.55})
    assert old({"x": 0.9}) == new({"x": 0.9}) == {"label": "high"}
    assert old({"x": 0.1}) == new({"x": 0.1}) == {"label": "low"}


def test_both_versions_record_their_answers_for_feedback() -> None:
    for version in ("v1", "v2"):
        manifest = tomllib.loads((HERE / version / "algora.toml").read_text())
        assert manifest["monitoring"] == {"feedback": True}
