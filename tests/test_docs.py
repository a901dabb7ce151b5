"""Generated documentation is current: regenerate with scripts/generate_docs.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_generator():
    spec = importlib.util.spec_from_file_location(
        "generate_docs", ROOT / "scripts" / "generate_docs.py"
    )
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_settings_reference_is_current() -> None:
    generator = load_generator()
    assert (ROOT / "docs" / "settings.md").read_text(
        encoding="utf-8"
    ) == generator.settings_markdown(), (
        "docs/settings.md is stale: run .venv/bin/python scripts/generate_docs.py"
    )
