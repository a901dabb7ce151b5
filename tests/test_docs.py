"""Generated documentation is current: regenerate with scripts/generate_docs.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


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


@pytest.mark.parametrize(
    ("page", "render"), [("cli.md", "cli_markdown"), ("sdk.md", "sdk_markdown")]
)
def test_generated_reference_is_current(page: str, render: str) -> None:
    generator = load_generator()
    assert (DOCS / page).read_text(encoding="utf-8") == getattr(generator, render)(), (
        f"docs/{page} is stale: run .venv/bin/python scripts/generate_docs.py"
    )


def test_cli_reference_covers_every_command() -> None:
    import typer.main

    from algora.cli.main import app

    text = (DOCS / "cli.md").read_text(encoding="utf-8")

    def paths(command, prefix: str):
        yield prefix
        for name in getattr(command, "commands", {}):
            yield from paths(command.commands[name], f"{prefix} {name}")

    for path in paths(typer.main.get_command(app), "algora"):
        assert f"# `{path}`" in text, f"docs/cli.md lacks `{path}`"


def test_sdk_reference_covers_the_public_api() -> None:
    import algora

    text = (DOCS / "sdk.md").read_text(encoding="utf-8")
    for name in algora.__all__:
        assert f"`algora.{name}`" in text, f"docs/sdk.md lacks algora.{name}"
    for method in ("call", "call_full", "publish", "set_alias", "upload", "download"):
        assert f"### `{method}(" in text, f"docs/sdk.md lacks {method}()"
