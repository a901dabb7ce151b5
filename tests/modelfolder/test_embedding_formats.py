"""A sentence-embedding model in Hugging Face's layout is recognised by its folder's structure
(``modules.json`` of sentence_transformers modules, ``config.json``, safetensors weights), and
nothing that merely looks like it is."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algora.modelfolder.formats import FORMATS, detect
from algora.modelfolder.layouts import find_manifest
from algora.modelfolder.saved import requirements_for

MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
]


def _folder(root: Path, modules: object = MODULES, weights: str = "model.safetensors") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "modules.json").write_text(json.dumps(modules))
    (root / "config.json").write_text('{"architectures": ["BertModel"]}')
    (root / weights).write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (root / "tokenizer.json").write_text('{"version": "1.0", "model": {}}')
    return root / "modules.json"


def test_the_folder_is_one_safe_model_named_by_its_modules_json(tmp_path: Path) -> None:
    marker = _folder(tmp_path / "MiniLM")
    assert detect(marker) == "sentence-transformers"
    assert FORMATS["sentence-transformers"].safe is True
    found = find_manifest(tmp_path / "MiniLM", name=None)
    assert found.manifest.model.name == "minilm"
    assert found.manifest.worker_entrypoint == "saved:sentence-transformers:modules.json"
    assert requirements_for(found.manifest) == ["sentence-transformers>=3,<7", "torch==2.13.0"]


@pytest.mark.parametrize(
    ("modules", "weights"),
    [
        (MODULES, "pytorch_model.bin"),  # pickled weights: not this (safe) format
        ([{**MODULES[0], "type": "os.system"}], "model.safetensors"),  # would import anything
        ([MODULES[1], MODULES[0]], "model.safetensors"),  # no Transformer first
        ([{**MODULES[0], "path": "../elsewhere"}], "model.safetensors"),
        ([], "model.safetensors"),
        ({"modules": MODULES}, "model.safetensors"),
    ],
)
def test_look_alikes_are_no_model(tmp_path: Path, modules: object, weights: str) -> None:
    assert detect(_folder(tmp_path / "m", modules, weights)) is None


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        _folder(Path(folder))
        yield Path(folder)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tail=st.binary(max_size=512))
def test_random_bytes_beside_a_real_model_are_no_model(scratch: Path, tail: bytes) -> None:
    probe = scratch / "probe.json"
    probe.write_bytes(b"[" + tail)
    assert detect(probe) is None
