"""Checks for the hello example. Run with: python -m pytest test_model.py"""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _import(name: str):
    """Import a module of this folder under a unique name (examples share file names)."""
    spec = importlib.util.spec_from_file_location(
        f"algora_example_hello_{name}", HERE / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


model = _import("model")


def test_greets() -> None:
    assert model.apply("world") == "Hello world"
    assert model.apply("") == "Hello "
    assert model.apply("Zoë 👋") == "Hello Zoë 👋"


def test_manifest_example() -> None:
    manifest = tomllib.loads((HERE / "algora.toml").read_text())
    assert manifest["model"]["entrypoint"] == "model:apply"
    assert model.apply(manifest["example"]["text"]) == "Hello world"


def test_has_no_dependencies() -> None:
    lines = (HERE / "requirements.txt").read_text().splitlines()
    assert [line for line in lines if line.strip() and not line.lstrip().startswith("#")] == []
