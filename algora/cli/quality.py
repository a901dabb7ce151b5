"""``algora feedback REQUEST_ID --label|--value`` (the ground truth of a call) and ``algora alias
compare owner/name alias`` (an alias's primary beside its canaries and shadow)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from algora.cli.common import client_for, console, errors_to_exit, write_json
from algora.cli.options import JsonOption, ModelArgument, Remote, with_remote
from algora.cli.stats import milliseconds, quality_cell
from algora.errors import InvalidInput

__all__ = ["compare", "feedback", "label_of"]

_WHEN = "an ISO 8601 time or a duration before now (30m, 6h, 2d, 1w)"


def label_of(text: str) -> str | float | bool:
    """A label as typed: a JSON number or boolean (``1``, ``true``), else the text itself
    (quote it, ``'"1"'``, for the text of a number)."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str | int | float | bool) else text


@with_remote
def feedback(
    remote: Remote,
    request_id: Annotated[str, typer.Argument(help="The call's request id (X-Request-Id).")],
    label: Annotated[
        str | None, typer.Option("--label", help="The true label (classification).")
    ] = None,
    value: Annotated[
        float | None, typer.Option("--value", help="The true value (regression).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Send the ground truth of a call: its version's answer is scored (accuracy for a label,
    absolute error for a value). One feedback a call; its version must record calls."""
    with errors_to_exit():
        if (label is None) == (value is None):
            raise InvalidInput("give the ground truth as --label or --value (one of them)")
        answer = client_for(remote).feedback(
            request_id, label=label_of(label) if label is not None else None, value=value
        )
    if as_json:
        write_json(answer)
        return
    where = f"{answer['model']} {answer['version']}"
    if not answer["scored"]:
        console.print(f"{where}: feedback kept; its answer could not be scored")
    elif answer["correct"] is not None:
        console.print(f"{where}: {'correct' if answer['correct'] else 'wrong'}")
    else:
        console.print(f"{where}: absolute error {answer['abs_error']:g}")


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _cells(side: dict[str, Any]) -> tuple[str, ...]:
    weight = "shadow" if side["role"] == "shadow" else f"{side['weight']}%"
    agreement = "-" if side["role"] == "primary" else _percent(side["agreement"])
    return (
        side["version"],
        f"{side['role']} ({weight})",
        str(side["calls"]),
        f"{side['error_rate']:.1%}",
        milliseconds(side["p50_ms"]),
        milliseconds(side["p95_ms"]),
        milliseconds(side["p99_ms"]),
        f"{quality_cell(side)} ({side['scored']})",
        agreement if not side["compared"] else f"{agreement} ({side['compared']})",
    )


@with_remote
def compare(
    remote: Remote,
    model: ModelArgument,
    alias: Annotated[str, typer.Argument(help="The alias (with a split or a shadow).")],
    since: Annotated[str | None, typer.Option("--since", help=f"From (1h): {_WHEN}.")] = None,
    until: Annotated[str | None, typer.Option("--until", help=f"To (now): {_WHEN}.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Compare an alias's primary with its canaries and shadow: latency, errors, accuracy
    from feedback, and the shadow's agreement with the primary."""
    with errors_to_exit():
        answer = client_for(remote).compare_alias(model, alias, since=since, until=until)
    if as_json:
        write_json(answer)
        return
    window = f"{answer['since'][:16]} to {answer['until'][:16]} UTC"
    table = Table(
        "version", "role", "calls", "errors", "p50", "p95", "p99", "accuracy (scored)",
        "agreement", title=f"{answer['model']} {answer['alias']}: {window} (latency in ms)",
    )  # fmt: skip
    for side in (answer["primary"], *answer["others"]):
        table.add_row(*_cells(side))
    console.print(table)
