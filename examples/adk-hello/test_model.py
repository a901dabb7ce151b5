"""Checks for the adk-hello example. Run with: python -m pytest test_model.py

Needs the algorithm's own requirements (``pip install -r requirements.txt``): ADK itself runs it
here, locally, as it would on Algorithmia.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

pytest.importorskip("Algorithmia", reason="needs requirements.txt installed")


@pytest.fixture(scope="module")
def algorithm():
    """src/Algorithm.py, imported from this folder as ADK expects (it runs once, locally)."""
    previous = Path.cwd()
    os.chdir(HERE)  # ADK reads model_manifest.json from the working directory
    try:
        spec = importlib.util.spec_from_file_location(
            "algora_example_adk_hello_Algorithm", HERE / "src" / "Algorithm.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)  # ADK(apply, load).init("Algorithmia") runs here
        yield module
    finally:
        os.chdir(previous)


def test_greets(algorithm) -> None:
    assert algorithm.algorithm.load_result == {"greeting": "hello"}
    assert algorithm.apply("world", {"greeting": "hello"}) == "hello world"


def test_manifest_checksum_matches_the_file() -> None:
    manifest = json.loads((HERE / "model_manifest.json").read_text())
    (entry,) = manifest["required_files"]
    path = HERE / entry["source_uri"].removeprefix("file://")
    assert hashlib.md5(path.read_bytes()).hexdigest() == entry["md5_checksum"]


def test_the_repository_is_algorithmias_layout_only() -> None:
    # Nothing added for Algora: algorithmia.conf names the algorithm, src/Algorithm.py is it.
    assert not (HERE / "algora.toml").exists()
    conf = json.loads((HERE / "algorithmia.conf").read_text())
    assert conf["algoname"] == "adk-hello"
    assert conf["language"] == "python3"
    assert (HERE / "src" / "Algorithm.py").is_file()
