"""The documentation is current and whole.

Generated pages (settings, CLI, SDK) match what scripts/generate_docs.py writes now; every
relative link in README.md and docs/*.md names a file of the repository; the README links
nothing outside it.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

# [text](target) and [text]: target; images too. Code spans and fenced blocks are skipped.
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)


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


def links(text: str) -> list[str]:
    text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.MULTILINE | re.DOTALL)
    text = re.sub(r"`[^`\n]*`", "", text)
    return INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)


def test_link_finder_sees_links_and_skips_code() -> None:
    found = links(
        "see [the guide](docs/a.md#step) and ![img](<img/b.png>)\n"
        "`[not](a-link.md)`\n```\n[nor](this.md)\n```\n[ref]: docs/c.md\n"
    )
    assert found == ["docs/a.md#step", "img/b.png", "docs/c.md"]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_name_files_of_the_repository(page: Path) -> None:
    problems = []
    for target in links(page.read_text(encoding="utf-8")):
        parts = urlsplit(target)
        if parts.scheme or parts.netloc:
            if page.name == "README.md" and page.parent == ROOT:
                problems.append(f"{target}: the README links nothing outside the repository")
            continue
        if not parts.path:  # an anchor on the same page
            continue
        resolved = (page.parent / unquote(parts.path)).resolve()
        if not resolved.is_relative_to(ROOT):
            problems.append(f"{target}: outside the repository")
        elif not resolved.exists():
            problems.append(f"{target}: no such file")
    assert not problems, f"{page.relative_to(ROOT)}: " + "; ".join(problems)


def test_readme_names_no_path_outside_the_repository() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "shared/" not in text
    assert "../" not in text


def test_docs_index_lists_every_page() -> None:
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    for page in sorted(DOCS.glob("*.md")):
        if page.name != "README.md":
            assert f"]({page.name})" in index, f"docs/README.md does not list {page.name}"
