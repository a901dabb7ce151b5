"""``algora usage`` (calls and compute per organization, principal, key or model) and
``algora quota list|set|delete``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from algora.cli.common import client_for, console, errors_to_exit, print_rows
from algora.cli.options import JsonOption, Remote, with_remote

__all__ = ["quota_app", "usage"]

quota_app = typer.Typer(
    help="Budgets of calls or compute seconds per day or month for organizations and keys.",
    no_args_is_help=True,
)
_WHEN = "an ISO 8601 time or a duration before now (30m, 6h, 2d, 1w)"
_BY = ("org", "principal", "key", "model")


@with_remote
def usage(
    remote: Remote,
    by: Annotated[str, typer.Option("--by", help="Sum by org, principal, key or model.")] = "org",
    since: Annotated[
        str | None, typer.Option("--since", help=f"From (30 days ago): {_WHEN}.")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help=f"To (now): {_WHEN}.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Calls, errors and compute seconds (the workers' CPU time) for charge-back: yours, your
    organizations' if you administer them, or (an admin) everyone's."""
    if by not in _BY:
        raise typer.BadParameter(f"--by is one of {', '.join(_BY)}")
    with errors_to_exit():
        report = client_for(remote).usage(by=by, since=since, until=until)
    columns = (by, "calls", "errors", "compute s")
    print_rows(report["rows"], as_json, columns, _usage_cells)


def _usage_cells(row: dict[str, Any]) -> tuple[str, ...]:
    return row["group"], str(row["calls"]), str(row["errors"]), f"{row['compute_seconds']:.3f}"


@quota_app.command("list")
@with_remote
def quota_list(remote: Remote, as_json: JsonOption = False) -> None:
    """The quotas of your keys and organizations (an admin: all) and what each used."""
    with errors_to_exit():
        rows = client_for(remote).quotas()
    columns = ("id", "for", "metric", "period", "limit", "used", "resets at")
    print_rows(rows, as_json, columns, _quota_cells)


def _quota_cells(row: dict[str, Any]) -> tuple[str, ...]:
    subject = f"org {row['org']}" if row["org"] else f"key {row['key_id']}"
    return (
        str(row["id"]),
        subject,
        row["metric"],
        row["period"],
        f"{row['limit']:g}",
        f"{row['used']:g}",
        row["resets_at"],
    )


@quota_app.command("set")
@with_remote
def quota_set(
    remote: Remote,
    metric: Annotated[str, typer.Argument(help="calls or compute_seconds.")],
    period: Annotated[str, typer.Argument(help="day or month (UTC).")],
    limit: Annotated[float, typer.Argument(help="How many calls or compute seconds.")],
    org: Annotated[str | None, typer.Option("--org", help="For an organization.")] = None,
    key_id: Annotated[str | None, typer.Option("--key-id", help="Or for one key (its id).")] = None,
) -> None:
    """Create or change a quota (admins only): calls past it are refused with 429."""
    with errors_to_exit():
        row = client_for(remote).set_quota(
            metric=metric, period=period, limit=limit, org=org, key_id=key_id
        )
    console.print(f"quota {row['id']}: " + " ".join(_quota_cells(row)[1:5]))


@quota_app.command("delete")
@with_remote
def quota_delete(
    remote: Remote, quota_id: Annotated[int, typer.Argument(help="The quota's id.")]
) -> None:
    """Remove a quota (admins only)."""
    with errors_to_exit():
        client_for(remote).delete_quota(quota_id)
    console.print(f"removed quota {quota_id}")
