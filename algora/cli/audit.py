"""``algora audit``: list, export and verify the audit log."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from algora.cli.common import (
    client_for,
    console,
    err_console,
    errors_to_exit,
    print_json,
    print_rows,
    server_side,
)
from algora.cli.options import JsonOption, Remote, with_remote
from algora.sdk.client import raise_for_error

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = ["audit_app"]

audit_app = typer.Typer(
    help="Read the audit log: who called or changed what, when, from where.",
    no_args_is_help=True,
)

PrincipalOpt = Annotated[str | None, typer.Option("--principal", help="Exact principal name.")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="owner/name")]
SinceOpt = Annotated[datetime | None, typer.Option("--since", help="Received at or after (UTC).")]
UntilOpt = Annotated[datetime | None, typer.Option("--until", help="Received before (UTC).")]
OutcomeOpt = Annotated[
    str | None, typer.Option("--outcome", help="allow, deny or error (allowed but failed).")
]


def _filters(
    principal: str | None,
    model: str | None,
    since: datetime | None,
    until: datetime | None,
    outcome: str | None,
) -> dict[str, str]:
    if outcome is not None and outcome not in ("allow", "deny", "error"):
        err_console.print("[bold red]error[/]: --outcome takes allow, deny or error")
        raise typer.Exit(2)
    params = {
        "principal": principal,
        "model": model,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "outcome": outcome,
    }
    return {k: v for k, v in params.items() if v is not None}


def _event_cells(row: dict[str, Any]) -> tuple[str, ...]:
    status = str(row["status"])
    if row["decision"] == "deny":
        status += " denied"
    elif row["error_code"]:
        status += f" {row['error_code']}"
    received, principal = str(row["received_at"])[:19], row["principal"] or "-"
    return (
        str(row["id"]),
        received,
        principal,
        row["action"],
        row["resource"] or "",
        row["version"] or "",
        status,
    )


@audit_app.command("list")
@with_remote
def audit_list(
    remote: Remote,
    principal: PrincipalOpt = None,
    model: ModelOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    outcome: OutcomeOpt = None,
    limit: Annotated[int, typer.Option("--limit", help="Most events to show.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Show audit events, newest first."""
    params: dict[str, Any] = {**_filters(principal, model, since, until, outcome)}
    params["limit"] = max(1, min(limit, 1000))
    with errors_to_exit():
        rows = client_for(remote).get_json("/api/v1/audit", **params)
    columns = ("id", "received", "principal", "action", "resource", "version", "status")
    print_rows(rows, as_json, columns, _event_cells, json_out=print_json)


@audit_app.command("export")
@with_remote
def audit_export(
    remote: Remote,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (else stdout).")
    ] = None,
    principal: PrincipalOpt = None,
    model: ModelOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    outcome: OutcomeOpt = None,
) -> None:
    """Export audit events as JSON lines, oldest first."""
    params = _filters(principal, model, since, until, outcome)
    with errors_to_exit():
        client = client_for(remote)
        response = client.request("GET", "/api/v1/audit/export", params=params)
        raise_for_error(response)
    if output is None:
        sys.stdout.write(response.text)
        return
    output.write_text(response.text, encoding="utf-8")
    output.chmod(0o600)  # audit rows are not for every local user
    count = response.text.count("\n")
    err_console.print(f"wrote {count} event(s) to {output}")


@audit_app.command("verify")
@with_remote
def audit_verify(
    remote: Remote,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Read the registry database directly (ALGORA_DATABASE_URL if set, else the "
            "data directory's SQLite), for when the gateway is down.",
        ),
    ] = None,
    anchor: Annotated[
        str | None,
        typer.Option(
            "--anchor",
            help="ID:HASH printed by an earlier verify and kept outside the database: also "
            "detect rows deleted from the end of the chain.",
        ),
    ] = None,
) -> None:
    """Check the audit chain; exit 1 and name the first bad row when it is broken."""
    if anchor is not None:
        from algora.audit.anchors import parse_anchor

        try:
            parse_anchor(anchor)
        except ValueError as error:
            err_console.print(f"[bold red]error[/]: {error}")
            raise typer.Exit(2) from None
    if data_dir is not None:
        report = _verify_locally(data_dir, anchor)
    else:
        params = {"anchor": anchor} if anchor is not None else {}
        with errors_to_exit():
            report = client_for(remote).get_json("/api/v1/audit/verify", **params)
    if report["ok"]:
        console.print(f"[green]ok[/]: {report['message']}")
        if report.get("anchor"):
            console.print(f"anchor (keep it to detect deletions later): {report['anchor']}")
        return
    err_console.print(
        f"[bold red]broken[/] at row {report['first_bad_id']} ({report['problem']}): "
        f"{report['message']}; the {report['rows']} row(s) before it are intact"
    )
    raise typer.Exit(1)


def _recover_journals(engine: Engine) -> None:
    """Commit the rows a gateway that crashed left in its audit journal, as its next start would."""
    from algora.audit.chain import sqlite_driver
    from algora.audit.journal import journal_directory, recover

    directory = journal_directory(engine.url)
    if directory is None:
        return
    with engine.connect() as connection:
        recovered = recover(directory, sqlite_driver(connection))
    if recovered:
        err_console.print(
            f"committed {recovered} audit row(s) left in the journal of a gateway that stopped"
        )


def _verify_locally(data_dir: Path, anchor: str | None) -> dict[str, Any]:
    from algora.settings import Settings

    with server_side("algora audit verify --data-dir"):
        from algora.audit.log import parse_anchor, report_dict, verify
        from algora.db.engine import create_registry_engine, make_session_factory

    settings = Settings(data_dir=data_dir)
    url = settings.resolved_database_url
    if url.startswith("sqlite") and not (settings.resolved_data_dir / "registry.db").is_file():
        err_console.print(f"[bold red]error[/]: no registry database in {data_dir}")
        raise typer.Exit(1)
    engine = create_registry_engine(url)
    try:
        seen = parse_anchor(anchor) if anchor is not None else None
        _recover_journals(engine)
        return report_dict(verify(make_session_factory(engine), seen))
    finally:
        engine.dispose()
