"""``algora init NAME``: a model folder that publishes as it is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from algora.cli.common import console
from algora.modelfolder.manifest import NAME_PATTERN

__all__ = ["init"]

_MANIFEST = """[model]
name = "{name}"
entrypoint = "model:apply"
description = "Describe what {name} does in one line"
tags = []

[environment]
requirements = "requirements.txt"

[example]
input = {{ text = "Algora", times = 2 }}

[serving]
timeout = 30
replicas = 1
"""

_MODEL = '''"""{name}: a model is a function (or a class with load() and predict()).

The type hints are the model's input and output schema.
"""

from typing import TypedDict


class Request(TypedDict):
    text: str
    times: int


class Answer(TypedDict):
    greeting: str


def apply(input: Request) -> Answer:
    return {{"greeting": " ".join(["Hello " + input["text"]] * input["times"])}}
'''

_TEST = """from model import apply


def test_apply() -> None:
    assert apply({"text": "x", "times": 2}) == {"greeting": "Hello x Hello x"}
"""

_REQUIREMENTS = "# One PEP 508 requirement per line, pinned: e.g. scikit-learn==1.7.2\n"

_README = """# {name}

Publish: `algora publish .`
Call: `algora call OWNER/{name} '{{"text": "Algora", "times": 2}}'`
Test locally: `python -m pytest test_model.py`
"""


def init(
    name: Annotated[str, typer.Argument(help="Model name: lowercase letters, digits, - and _.")],
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Folder to create (default: ./NAME).")
    ] = None,
) -> None:
    """Create a model folder: algora.toml, requirements.txt, model.py and a test."""
    if not NAME_PATTERN.match(name):
        console.print(
            f"[bold red]error[/]: '{name}' is not a valid model name: use 1-64 lowercase "
            "letters, digits, '-' or '_'"
        )
        raise typer.Exit(2)
    folder = directory or Path(name)
    if folder.exists() and any(folder.iterdir()):
        console.print(f"[bold red]error[/]: '{folder}' exists and is not empty")
        raise typer.Exit(1)
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "algora.toml": _MANIFEST.format(name=name),
        "model.py": _MODEL.format(name=name),
        "test_model.py": _TEST,
        "requirements.txt": _REQUIREMENTS,
        "README.md": _README.format(name=name),
    }
    for filename, text in files.items():
        (folder / filename).write_text(text, encoding="utf-8")
    console.print(f"created [bold]{folder}[/] ({', '.join(files)})")
    console.print(f"next: [cyan]algora publish {folder}[/]")
