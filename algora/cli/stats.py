"""``algora stats owner/name``: a model's calls, errors and latency per version, with a
sparkline of its calls over the window."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.table import Table

from algora.cli.common import client_for, console, errors_to_exit, write_json
from algora.cli.options import JsonOption, ModelArgument, Remote, with_remote
from algora.sdk.client import Client

__all__ = ["milliseconds", "quality_cell", "reports", "stats"]

_BARS = "▁▂▃▄▅▆▇█"
_WHEN = "an ISO 8601 time or a duration before now (30m, 6h, 2d, 1w)"


def sparkline(values: list[int]) -> str:
    """One character a value, its height relative to the largest (a space for none)."""
    top = max(values, default=0)
    if top == 0:
        return " " * len(values)
    return "".join(
        " " if v == 0 else _BARS[min(len(_BARS) - 1, v * len(_BARS) // (top + 1))] for v in values
    )


def milliseconds(value: float | None) -> str:
    """A latency for a table: one decimal below 100 ms, none above; "-" for none."""
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def quality_cell(total: dict[str, Any]) -> str:
    """Accuracy, or mean absolute error, from feedback; "-" without any."""
    if total.get("accuracy") is not None:
        return f"{total['accuracy']:.1%}"
    if total.get("mean_abs_error") is not None:
        return f"MAE {total['mean_abs_error']:.3g}"
    return "-"


def _cells(row: dict[str, Any]) -> tuple[str, ...]:
    total = row["total"]
    return (
        row["version"],
        str(total["calls"]),
        str(total["errors"]),
        f"{total['error_rate']:.1%}",
        milliseconds(total["mean_ms"]),
        milliseconds(total["p50_ms"]),
        milliseconds(total["p95_ms"]),
        milliseconds(total["p99_ms"]),
        quality_cell(total),
        sparkline([point["calls"] for point in row["points"]][-60:]),
    )


Since = Annotated[str | None, typer.Option("--since", help=f"From: {_WHEN}.")]
Until = Annotated[str | None, typer.Option("--until", help=f"To (now): {_WHEN}.")]
StepOption = Annotated[str, typer.Option("--step", help="Bucket width: 1m, 1h or 1d.")]
VersionOption = Annotated[str | None, typer.Option("--version", help="Only this version (1.2.3).")]


def _window(answer: dict[str, Any]) -> str:
    return f"{answer['since'][:16]} to {answer['until'][:16]} UTC by {answer['step']}"


def _windowed(
    read: Callable[..., dict[str, Any]], show: Callable[[dict[str, Any]], None]
) -> Callable[..., None]:
    """The command that reads a model's ``read`` (a client method taking the window: stats,
    reports) and prints the answer with ``show``, or as it came with --json; ``show``'s
    docstring is its help."""

    def command(
        remote: Remote,
        model: ModelArgument,
        since: Since = None,
        until: Until = None,
        step: StepOption = "1m",
        version: VersionOption = None,
        as_json: JsonOption = False,
    ) -> None:
        with errors_to_exit():
            client = client_for(remote)
            answer = read(client, model, since=since, until=until, step=step, version=version)
        if as_json:
            write_json(answer)
            return
        show(answer)

    command.__doc__ = show.__doc__
    return with_remote(command)


def _show_stats(answer: dict[str, Any]) -> None:
    """A model's calls, errors, latency (mean, p50, p95, p99 in ms) and accuracy from feedback
    per version."""
    window = _window(answer)
    if not answer["versions"]:
        console.print(f"{answer['model']}: no calls from {window}")
        return
    table = Table(
        "version", "calls", "errors", "error %", "mean", "p50", "p95", "p99", "accuracy",
        "calls over time",
        title=f"{answer['model']}: {window} (latency in ms)",
    )  # fmt: skip
    for row in answer["versions"]:
        table.add_row(*_cells(row))
    console.print(table)
    for row in answer.get("aliases", []):
        total = row["total"]
        console.print(f"alias {row['alias']}: {quality_cell(total)} ({total['scored']} scored)")


def _show_reports(answer: dict[str, Any]) -> None:
    """What a model's code reported about its calls (algora.report, Algorithmia's insights):
    per version and name, how many values, their mean, least and greatest."""
    if not answer["series"]:
        console.print(f"{answer['model']}: nothing reported from {_window(answer)}")
        return
    table = Table(
        "version", "name", "count", "mean", "min", "max", "reports over time",
        title=f"{answer['model']}: {_window(answer)}",
    )  # fmt: skip
    for row in answer["series"]:
        total = row["total"]
        table.add_row(
            row["version"],
            row["name"],
            str(total["count"]),
            *(f"{total[field]:.4g}" for field in ("mean", "min", "max")),
            sparkline([point["count"] for point in row["points"]][-60:]),
        )
    console.print(table)


stats = _windowed(Client.stats, _show_stats)
reports = _windowed(Client.reports, _show_reports)
