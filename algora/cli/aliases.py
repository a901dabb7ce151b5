"""``algora alias set|list|rm`` and ``algora promote request|list|approve|reject``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from algora.cli.common import (
    client_for,
    console,
    err_console,
    errors_to_exit,
    print_rows,
    write_json,
)
from algora.cli.options import JsonOption, ModelArgument, Remote, with_remote
from algora.sdk.client import Client

__all__ = ["alias_app", "promote_app"]

alias_app = typer.Typer(
    help="Aliases: names such as production that point at a version and move.",
    no_args_is_help=True,
)
promote_app = typer.Typer(
    help="Promotions: moves of protected aliases that a second principal approves.",
    no_args_is_help=True,
)

NoteOption = Annotated[str, typer.Option("--note", help="Why (shown to approvers).")]
PromotionArgument = Annotated[int, typer.Argument(help="The request's number.", min=1)]
_STATUSES = ("pending", "approved", "rejected", "expired", "superseded", "all")


def _promotion_cells(row: dict[str, Any]) -> tuple[str, ...]:
    return (
        str(row["id"]),
        row["model"],
        row["alias"],
        row.get("from_version") or "-",
        row["version"],
        row["status"],
        row["requested_by"],
        str(row["expires_at"])[:19],
    )


def _alias_cells(row: dict[str, Any]) -> tuple[str, ...]:
    protected = "yes" if row["protected"] else ""
    weights = row.get("weights") or {}
    split = " ".join(f"{v}={w}" for v, w in weights.items()) if len(weights) > 1 else ""
    split += " (sticky)" if split and row.get("sticky") else ""
    return (
        row["alias"],
        split or row["version"],
        row.get("shadow") or "",
        protected,
        str(row["updated_at"])[:19],
        row.get("updated_by") or "",
    )


def _routes_text(row: dict[str, Any]) -> str:
    cells = _alias_cells(row)
    return cells[1] + (f" (shadow {cells[2]})" if cells[2] else "")


def _routes(versions: list[str]) -> tuple[str | None, dict[str, int] | None]:
    """One version spec, or SPEC=WEIGHT arguments as weights."""
    if len(versions) == 1 and "=" not in versions[0]:
        return versions[0], None
    weights: dict[str, int] = {}
    for text in versions:
        spec, _, weight = text.partition("=")
        if not spec or not weight.isdigit():
            raise typer.BadParameter(
                f"'{text}' is not SPEC=WEIGHT: to split the calls, give each version its "
                "share, e.g. 1.0.0=90 1.1.0=10"
            )
        weights[spec] = int(weight)
    return None, weights


def _pending(row: dict[str, Any]) -> None:
    console.print(
        f"[bold]{row['alias']}[/] is protected: promotion request [bold]{row['id']}[/] to "
        f"{row['version']} awaits approval by another principal "
        f"(`algora promote approve {row['model']} {row['id']}`)"
    )


# aliases ------------------------------------------------------------------------------------
@alias_app.command("set")
@with_remote
def alias_set(
    remote: Remote,
    model: ModelArgument,
    alias: Annotated[str, typer.Argument(help="The alias, e.g. production or staging.")],
    versions: Annotated[
        list[str],
        typer.Argument(
            help="A version spec, resolved now: 1.2.3, 1.x, latest, an alias; or several as "
            "SPEC=WEIGHT to split the calls: 1.0.0=90 1.1.0=10."
        ),
    ],
    shadow: Annotated[
        str | None,
        typer.Option("--shadow", help="A version spec: it gets a copy of each call."),
    ] = None,
    sticky: Annotated[
        bool,
        typer.Option(
            "--sticky", help="With a split: each caller's key keeps to one of its versions."
        ),
    ] = False,
    note: NoteOption = "",
    as_json: JsonOption = False,
) -> None:
    """Point an alias at a version, or split its calls between versions by weight (--sticky:
    each caller's key keeps to one), and optionally shadow it (a protected alias: ask for a
    promotion)."""
    version, weights = _routes(versions)
    with errors_to_exit():
        outcome = client_for(remote).set_alias(
            model, alias, version, note=note, weights=weights, shadow=shadow, sticky=sticky
        )
    if as_json:
        write_json(outcome)
    elif outcome["moved"]:
        row = outcome["alias"]
        console.print(f"{row['model']} [bold]{row['alias']}[/] -> {_routes_text(row)}")
    else:
        _pending(outcome["promotion"])


@alias_app.command("list")
@with_remote
def alias_list(
    remote: Remote,
    model: ModelArgument,
    as_json: JsonOption = False,
) -> None:
    """List a model's aliases and the versions they point at."""
    with errors_to_exit():
        rows = client_for(remote).aliases(model)
    print_rows(
        rows, as_json, ("alias", "version", "shadow", "protected", "updated", "by"), _alias_cells
    )


@alias_app.command("rm")
@with_remote
def alias_rm(
    remote: Remote,
    model: ModelArgument,
    alias: Annotated[str, typer.Argument(help="The alias to delete.")],
) -> None:
    """Delete an alias (not a protected one); calls that name it then get 404."""
    with errors_to_exit():
        client_for(remote).delete_alias(model, alias)
    console.print(f"deleted alias {alias} of {model}")


# promotions ---------------------------------------------------------------------------------
@promote_app.command("request")
@with_remote
def promote_request(
    remote: Remote,
    model: ModelArgument,
    alias: Annotated[str, typer.Argument(help="The alias to move, e.g. production.")],
    version: Annotated[str, typer.Argument(help="A version spec, resolved now.")],
    note: NoteOption = "",
    as_json: JsonOption = False,
) -> None:
    """Ask for an alias to point at a version once another principal approves."""
    with errors_to_exit():
        row = client_for(remote).request_promotion(model, alias, version, note=note)
    if as_json:
        write_json(row)
    else:
        _pending(row)


@promote_app.command("list")
@with_remote
def promote_list(
    remote: Remote,
    model: Annotated[
        str | None, typer.Argument(help="owner/name; default: every model you manage.")
    ] = None,
    status: Annotated[
        str, typer.Option("--status", help="pending, approved, rejected, expired, superseded, all.")
    ] = "pending",
    as_json: JsonOption = False,
) -> None:
    """List promotion requests, newest first."""
    if status not in _STATUSES:
        err_console.print(f"[bold red]error[/]: --status is one of {', '.join(_STATUSES)}")
        raise typer.Exit(2)
    with errors_to_exit():
        rows = client_for(remote).promotions(model, status)
    columns = ("id", "model", "alias", "from", "to", "status", "requested by", "expires")
    print_rows(rows, as_json, columns, _promotion_cells)


def _decision(
    decide: Callable[..., dict[str, Any]], said: Callable[[dict[str, Any]], str], doc: str
) -> Callable[..., None]:
    """The command that decides a promotion request with ``decide`` (a client method: approve,
    reject) and prints what ``said`` makes of the decided request."""

    def command(
        remote: Remote,
        model: ModelArgument,
        promotion_id: PromotionArgument,
        note: NoteOption = "",
    ) -> None:
        with errors_to_exit():
            row = decide(client_for(remote), model, promotion_id, note=note)
        console.print(said(row))

    command.__doc__ = doc
    return with_remote(command)


promote_app.command("approve")(
    _decision(
        Client.approve_promotion,
        lambda row: (
            f"approved request {row['id']}: {row['model']} [bold]{row['alias']}[/] -> "
            f"{row['version']}"
        ),
        "Approve another principal's promotion request: the alias moves at once.",
    )
)
promote_app.command("reject")(
    _decision(
        Client.reject_promotion,
        lambda row: f"rejected request {row['id']}: {row['alias']} stays where it is",
        "Reject another principal's promotion request: nothing moves.",
    )
)
