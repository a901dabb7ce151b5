"""``algora alert add|list|delete|deliveries``: a model's alert rules and their deliveries to
webhooks."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from algora.cli.common import client_for, console, errors_to_exit, print_rows, write_json
from algora.cli.options import JsonOption, ModelArgument, Remote, with_remote
from algora.errors import InvalidInput

__all__ = ["alert_app"]

alert_app = typer.Typer(
    help="Alert rules on a model's error rate, latency or accuracy, sent to webhooks.",
    no_args_is_help=True,
)
RuleArgument = Annotated[int, typer.Argument(help="The rule's id (algora alert list).")]


@alert_app.command("add")
@with_remote
def alert_add(
    remote: Remote,
    model: ModelArgument,
    signal: Annotated[
        str,
        typer.Option(
            "--signal", help="error_rate, p95_ms, p99_ms, accuracy, mean_abs_error, drift."
        ),
    ],
    window: Annotated[str, typer.Option("--window", help="1m to 24h (5m, 1h).")],
    webhook: Annotated[str, typer.Option("--webhook", help="The http(s) URL to post to.")],
    above: Annotated[float | None, typer.Option("--above", help="Fire above this.")] = None,
    below: Annotated[float | None, typer.Option("--below", help="Or below this.")] = None,
    version: Annotated[str | None, typer.Option("--version", help="Only this version.")] = None,
    alias: Annotated[str | None, typer.Option("--alias", help="Only this alias.")] = None,
    min_calls: Annotated[
        int, typer.Option("--min-calls", help="Calls the window needs first.")
    ] = 10,
    secret: Annotated[
        str | None, typer.Option("--secret", help="The signing secret (default: made).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Add an alert rule: its signing secret is printed this once."""
    with errors_to_exit():
        if (above is None) == (below is None):
            raise InvalidInput("give the threshold as --above or --below (one of them)")
        threshold = above if above is not None else below
        assert threshold is not None
        answer = client_for(remote).add_alert(
            model, signal=signal, threshold=threshold, window=window, webhook=webhook,
            comparison="above" if above is not None else "below", version=version,
            alias=alias, min_calls=min_calls, secret=secret,
        )  # fmt: skip
    if as_json:
        write_json(answer)
        return
    rule = answer["rule"]
    console.print(f"alert rule {rule['id']}: {' '.join(_rule_cells(rule)[1:5])}")
    console.print(f"signing secret (shown once): {answer['secret']}")


def _rule_cells(rule: dict[str, Any]) -> tuple[str, ...]:
    target = rule["version"] or rule["alias"] or "all versions"
    value = "-" if rule["last_value"] is None else f"{rule['last_value']:g}"
    return (
        str(rule["id"]),
        rule["signal"],
        f"{rule['comparison']} {rule['threshold']:g}",
        f"over {rule['window']}",
        target,
        rule["webhook"],
        rule["state"],
        value,
    )


@alert_app.command("list")
@with_remote
def alert_list(remote: Remote, model: ModelArgument, as_json: JsonOption = False) -> None:
    """A model's alert rules and their state."""
    with errors_to_exit():
        rules = client_for(remote).alerts(model)
    columns = ("id", "signal", "breach", "window", "of", "webhook", "state", "last value")
    print_rows(rules, as_json, columns, _rule_cells)


@alert_app.command("delete")
@with_remote
def alert_delete(remote: Remote, model: ModelArgument, rule_id: RuleArgument) -> None:
    """Delete an alert rule and its deliveries."""
    with errors_to_exit():
        client_for(remote).delete_alert(model, rule_id)
    console.print(f"deleted alert rule {rule_id}")


def _delivery_cells(delivery: dict[str, Any]) -> tuple[str, ...]:
    tries = ", ".join(
        str(a["status_code"]) if a["status_code"] is not None else "no answer"
        for a in delivery["attempts"]
    )
    return (delivery["delivery_id"], delivery["state"], delivery["status"], tries or "-")


@alert_app.command("deliveries")
@with_remote
def alert_deliveries(
    remote: Remote, model: ModelArgument, rule_id: RuleArgument, as_json: JsonOption = False
) -> None:
    """An alert rule's deliveries, newest first, with each try's outcome."""
    with errors_to_exit():
        deliveries = client_for(remote).alert_deliveries(model, rule_id)
    print_rows(deliveries, as_json, ("delivery", "state", "status", "tries"), _delivery_cells)
