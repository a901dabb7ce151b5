"""Write the generated references; tests/test_docs.py proves each is current.

- docs/settings.md from algora/settings.py (every ``ALGORA_*`` variable);
- docs/cli.md from the Typer app (every command and subcommand, its help and options);
- docs/sdk.md from the docstrings of the public API (``algora.__all__`` and what it returns).

Output depends only on the code: no terminal width, colours or environment leak into it.

Usage: .venv/bin/python scripts/generate_docs.py
"""

from __future__ import annotations

import ast
import inspect
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer.main
from typer.cli import get_docs_for_click

import algora
from algora import errors
from algora import settings as settings_module
from algora.cli.main import app as cli_app
from algora.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_DOC = ROOT / "docs" / "settings.md"
CLI_DOC = ROOT / "docs" / "cli.md"
SDK_DOC = ROOT / "docs" / "sdk.md"


# -- settings -------------------------------------------------------------------------------


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


# -- CLI ------------------------------------------------------------------------------------


def cli_markdown() -> str:
    """Typer's own Markdown (what ``typer algora.cli.main utils docs`` writes), plain text:
    a context without Typer's markup mode keeps help strings as written, with no HTML."""
    command = typer.main.get_command(cli_app)
    body = get_docs_for_click(obj=command, ctx=typer.Context(command), name="algora")
    intro = [
        "<!-- Generated from the Typer app (algora/cli/main.py) by scripts/generate_docs.py;",
        "     do not edit by hand. -->",
        "",
        "The commands that talk to a server take it and the key from `--url`/`--key`, else",
        "`ALGORA_URL`/`ALGORA_KEY`, else the profile saved by `algora login`.",
        "`algora COMMAND --help` prints the same help in the terminal.",
        "",
    ]
    title, _, rest = body.strip().partition("\n")
    return "\n".join([title, "", *intro, rest.strip("\n")]) + "\n"


# -- SDK ------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _annotation(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    if isinstance(annotation, str):
        return annotation
    return inspect.formatannotation(annotation)


def _signature(function: Any, *, drop_self: bool) -> str:
    """The signature as written in the source (annotations are strings there)."""
    signature = inspect.signature(function)
    parts: list[str] = []
    star_done = False
    for index, param in enumerate(signature.parameters.values()):
        if drop_self and index == 0:
            continue
        text = param.name
        if param.kind is param.VAR_POSITIONAL:
            text, star_done = "*" + text, True
        elif param.kind is param.VAR_KEYWORD:
            text = "**" + text
        elif param.kind is param.KEYWORD_ONLY and not star_done:
            parts.append("*")
            star_done = True
        annotation = _annotation(param.annotation)
        if annotation:
            text += f": {annotation}"
        if param.default is not param.empty:
            text += f" = {param.default!r}" if annotation else f"={param.default!r}"
        parts.append(text)
    returned = _annotation(signature.return_annotation)
    return f"({', '.join(parts)})" + (f" -> {returned}" if returned else "")


def _doc(obj: Any) -> str:
    return inspect.cleandoc(obj.__doc__) if obj.__doc__ else ""


def _paragraph(text: str) -> list[str]:
    return [text, ""] if text else []


def _public_members(cls: type) -> Iterator[tuple[str, Any]]:
    """The class's own public methods and properties, then those of its public SDK bases
    (``Client``'s alert methods)."""
    bases = [b for b in cls.__mro__[1:] if b.__module__.startswith("algora.sdk.")]
    seen: set[str] = set()
    for owner in (cls, *(b for b in bases if not b.__module__.split(".")[-1].startswith("_"))):
        for name, member in owner.__dict__.items():
            if name.startswith("_") or name in seen:
                continue
            seen.add(name)
            if isinstance(member, property) or inspect.isfunction(member):
                yield name, member


def _class_section(cls: type, qualname: str) -> list[str]:
    lines = [f"## `{qualname}`", ""]
    init = cls.__dict__.get("__init__")
    if inspect.isfunction(init):
        shown = _signature(init, drop_self=True).removesuffix(" -> None")
        lines.extend(["```python", f"{qualname}{shown}", "```", ""])
    lines.extend(_paragraph(_doc(cls)))
    for name, member in _public_members(cls):
        if isinstance(member, property) and member.fget is not None:
            returned = _annotation(inspect.signature(member.fget).return_annotation)
            lines.append(f"### `{name}` (property{': ' + returned if returned else ''})")
            lines.extend(["", *_paragraph(_doc(member.fget))])
        else:
            lines.append(f"### `{name}{_signature(member, drop_self=True)}`")
            lines.extend(["", *_paragraph(_doc(member))])
    return lines


def _sdk_classes() -> list[tuple[str, type]]:
    """``algora.__all__`` first, then the classes that its methods hand back."""
    from algora.sdk.client import CallResponse
    from algora.sdk.data import DataEntry, DataReader

    classes = [
        (name, getattr(algora, name))
        for name in algora.__all__
        if inspect.isclass(getattr(algora, name)) and name != "AlgoraError"
    ]
    returned = [
        ("algora.sdk.client.CallResponse", CallResponse),
        ("algora.sdk.data.DataEntry", DataEntry),
        ("algora.sdk.data.DataReader", DataReader),
    ]
    return [(f"algora.{name}", cls) for name, cls in classes] + returned


def _error_tree() -> str:
    """The tree drawn in the docstring of ``algora/errors.py``."""
    _, _, drawing = inspect.cleandoc(errors.__doc__ or "").partition("::\n")
    return inspect.cleandoc(drawing)


def _error_rows() -> list[str]:
    rows = ["| class | HTTP status | code | meaning |", "| --- | --- | --- | --- |"]
    for name in errors.__all__:
        cls = getattr(errors, name)
        if not (inspect.isclass(cls) and issubclass(cls, errors.AlgoraError)):
            continue
        meaning = _cell(_doc(cls).split("\n\n")[0])
        rows.append(f"| `{name}` | {int(cls.status)} | `{cls.code}` | {meaning} |")
    return rows


def sdk_markdown() -> str:
    lines = [
        "# The Python SDK",
        "",
        "Generated from the docstrings of the public API (`algora.__all__`) by",
        "`scripts/generate_docs.py`; do not edit by hand.",
        "",
        "```python",
        "import algora",
        "",
        "client = algora.Client()  # ALGORA_URL / ALGORA_KEY, else the profile of `algora login`",
        'client.model("admin/iris/1.x").call({"sepal_length": 5.1})',
        "```",
        "",
        f"Public names: {', '.join(f'`algora.{name}`' for name in algora.__all__)}.",
        "",
    ]
    for qualname, cls in _sdk_classes():
        lines.extend(_class_section(cls, qualname))
    lines.extend(
        [
            "## Errors",
            "",
            "Every error derives from `algora.AlgoraError` (`algora/errors.py`) and carries an",
            "HTTP status and a stable `code`; the SDK raises the class the server raised.",
            "",
            "```",
            _error_tree(),
            "```",
            "",
            *_error_rows(),
            "",
        ]
    )
    return "\n".join(lines).rstrip("\n") + "\n"


# -- main -----------------------------------------------------------------------------------

GENERATED = {
    SETTINGS_DOC: settings_markdown,
    CLI_DOC: cli_markdown,
    SDK_DOC: sdk_markdown,
}


def main() -> int:
    for path, render in GENERATED.items():
        path.write_text(render(), encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
