"""``algora drift owner/name``: a version's input and output drift against its reference, one
row a feature (PSI and status by the version's thresholds)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from algora.cli.common import client_for, console, errors_to_exit, write_json
from algora.cli.options import JsonOption, ModelArgument, Remote, with_remote
from algora.cli.stats import Since, Until

__all__ = ["drift"]

_STYLES = {"ok": "green", "warn": "yellow", "alert": "bold red", "no data": "dim"}
DriftVersion = Annotated[
    str | None,
    typer.Option("--version", help="This version (1.2.3); default: the newest with drift on."),
]


@with_remote
def drift(
    remote: Remote,
    model: ModelArgument,
    version: DriftVersion = None,
    since: Since = "1h",
    until: Until = None,
    as_json: JsonOption = False,
) -> None:
    """A version's drift per feature of its inputs and output: the population stability index
    of the window's values against its reference, and ok, warn or alert by its thresholds."""
    with errors_to_exit():
        answer = client_for(remote).drift(model, version=version, since=since, until=until)
    if as_json:
        write_json(answer)
        return
    window = f"{answer['since'][:16]} to {answer['until'][:16]} UTC"
    table = Table(
        "feature", "kind", "PSI", "status", "window n",
        title=f"{answer['model']} {answer['version']}: {window}, {answer['calls']} calls "
        f"(reference: {answer['reference']}, {answer['reference_size']}; "
        f"warn {answer['warn']:g}, alert {answer['alert']:g})",
    )  # fmt: skip
    for row in answer["features"]:
        score = "-" if row["psi"] is None else f"{row['psi']:.3f}"
        status = f"[{_STYLES.get(row['status'], '')}]{row['status']}[/]"
        table.add_row(row["feature"], row["kind"], score, status, str(row["window_n"]))
    console.print(table)
    if not answer["features"]:
        console.print("no reference profile yet: it is made from the reference's calls or file")
