"""``algora publish``: upload a model folder and follow its build with a progress display."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from algora.cli.common import client_for, console, errors_to_exit
from algora.cli.options import Remote, with_remote

__all__ = ["publish"]

_STEP = re.compile(r"^==> step (\d+)/(\d+): (.*)\Z")


@with_remote
def publish(
    remote: Remote,
    path: Annotated[
        Path,
        typer.Argument(
            help="The model folder: with an algora.toml, a pipeline.toml (a pipeline of other "
            "models' calls), or an Algorithmia algorithm's repository as it is "
            "(algorithmia.conf, src/, requirements.txt); or a saved model with no code, a "
            "folder or one file (scikit-learn joblib/pickle/skops, XGBoost, LightGBM, ONNX), "
            "named after the folder or the file."
        ),
    ],
    bump: Annotated[
        str | None, typer.Option("--bump", help="major, minor or patch (default: minor).")
    ] = None,
    version: Annotated[str | None, typer.Option("--version", help="Explicit X.Y.Z.")] = None,
    owner: Annotated[
        str | None, typer.Option("--owner", help="Publish for this owner (default: you).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Hide the build log.")] = False,
) -> None:
    """Publish a new immutable version of a model and wait until it is ready."""
    if bump not in (None, "major", "minor", "patch"):
        console.print("[bold red]error[/]: --bump must be major, minor or patch")
        raise typer.Exit(2)
    if bump and version:
        console.print("[bold red]error[/]: give --bump or --version, not both")
        raise typer.Exit(2)
    with errors_to_exit():
        client = client_for(remote)
        progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        with progress:
            task = progress.add_task("uploading", total=6)

            def on_log(line: str) -> None:
                match = _STEP.match(line)
                if match:
                    number, total, text = int(match[1]), int(match[2]), match[3]
                    progress.update(task, completed=number - 1, total=total, description=text)
                    progress.console.print(f"[cyan]{line}[/]", highlight=False)
                elif line.startswith("==> "):
                    progress.console.print(f"[cyan]{line}[/]", highlight=False)
                elif not quiet:
                    progress.console.print(f"  {line}", style="dim", markup=False, highlight=False)

            final = client.publish(path, owner=owner, bump=bump, version=version, on_log=on_log)
            progress.update(task, completed=progress.tasks[0].total, description="ready")
        ref = f"{final['model']}/{final['version']}"
        console.print(f"[bold green]published[/] {ref} (content {final['content_hash'][:12]})")
        console.print(f"call it: [cyan]algora call {ref} INPUT[/]")
