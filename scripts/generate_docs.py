"""Write docs/settings.md from algora/settings.py; tests/test_docs.py proves it is current.

Usage: .venv/bin/python scripts/generate_docs.py
"""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

from algora import settings as settings_module
from algora.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_DOC = ROOT / "docs" / "settings.md"


def field_docs() -> dict[str, str]:
    tree = ast.parse(inspect.getsource(settings_module))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings")
    docs: dict[str, str] = {}
    for node, following in zip(cls.body, cls.body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
        ):
            docs[node.target.id] = " ".join(str(following.value.value).split())
    return docs


def settings_markdown() -> str:
    docs = field_docs()
    lines = [
        "# Settings",
        "",
        "Generated from `algora/settings.py` by `scripts/generate_docs.py`; do not edit by hand.",
        "Every setting is read from an environment variable; the embedded defaults need none.",
        "",
        "| variable | default | meaning |",
        "| --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if name == "python":
            shown = "the interpreter running Algora"
        elif default is None:
            shown = "(unset)"
        else:
            shown = f"`{default}`"
        meaning = docs.get(name, "").replace("|", "\\|")
        lines.append(f"| `ALGORA_{name.upper()}` | {shown} | {meaning} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    SETTINGS_DOC.write_text(settings_markdown(), encoding="utf-8")
    print(f"wrote {SETTINGS_DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
