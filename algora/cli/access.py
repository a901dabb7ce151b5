"""``algora users``, ``algora orgs`` and ``algora models grant|revoke|grants|visibility``."""

from __future__ import annotations

import sys
from operator import itemgetter
from typing import Annotated, Any

import typer

from algora.cli import catalog
from algora.cli.common import client_for, console, err_console, errors_to_exit, print_rows
from algora.cli.options import JsonOption, ModelArgument, Remote, with_remote
from algora.sdk.client import raise_for_error

__all__ = ["models_app", "orgs_app", "users_app"]

users_app = typer.Typer(help="Create and list users and service accounts.", no_args_is_help=True)
orgs_app = typer.Typer(
    help="Organizations: create them, list them, manage their members.", no_args_is_help=True
)
OrgArgument = Annotated[str, typer.Argument(help="The organization.")]


def _send(method: str, path: str, remote: Remote, body: Any = None) -> Any:
    with errors_to_exit():
        response = client_for(remote).request(method, path, json=body)
        raise_for_error(response)
    return response.json() if response.content else None


def _print_principals(rows: list[dict[str, Any]], as_json: bool) -> None:
    print_rows(
        rows,
        as_json,
        ("name", "kind", "admin", "owner"),
        lambda row: (row["name"], row["kind"], str(row["is_admin"]), row.get("owner") or ""),
    )


# users --------------------------------------------------------------------------------------
@users_app.command("create")
@with_remote
def users_create(
    remote: Remote,
    name: Annotated[str, typer.Argument(help="The new user's (or service account's) name.")],
    service: Annotated[
        bool, typer.Option("--service", help="Create a service account instead of a user.")
    ] = False,
    owner: Annotated[
        str | None,
        typer.Option("--owner", help="With --service: the organization that owns it."),
    ] = None,
) -> None:
    """Create a user (admins; its first key is shown once) or a service account."""
    if owner is not None and not service:
        err_console.print("[bold red]error[/]: --owner goes with --service")
        raise typer.Exit(2)
    if service:
        body = _send("POST", "/api/v1/service-accounts", remote, {"name": name, "owner": owner})
        console.print(
            f"service account [bold]{body['name']}[/] owned by {body['owner']}; create its "
            f"keys with `algora keys create --for {body['name']} --scope ...`"
        )
        return
    body = _send("POST", "/api/v1/principals", remote, {"name": name})
    console.print(f"user [bold]{body['name']}[/], key id {body['key_id']}; secret (shown once):")
    sys.stdout.write(body["key"] + "\n")


@users_app.command("list")
@with_remote
def users_list(
    remote: Remote,
    as_json: JsonOption = False,
) -> None:
    """List the users, organizations and service accounts you can see."""
    _print_principals(_send("GET", "/api/v1/principals", remote), as_json)


# organizations ------------------------------------------------------------------------------
@orgs_app.command("create")
@with_remote
def orgs_create(
    remote: Remote,
    name: Annotated[str, typer.Argument(help="The organization's name.")],
) -> None:
    """Create an organization; you become its owner."""
    _send("POST", "/api/v1/orgs", remote, {"name": name})
    console.print(f"created organization [bold]{name}[/]; you are its owner")


@orgs_app.command("list")
@with_remote
def orgs_list(
    remote: Remote,
    as_json: JsonOption = False,
) -> None:
    """List your organizations (an admin: all)."""
    _print_principals(_send("GET", "/api/v1/orgs", remote), as_json)


@orgs_app.command("members")
@with_remote
def orgs_members(
    remote: Remote,
    org: OrgArgument,
    as_json: JsonOption = False,
) -> None:
    """List an organization's members and their roles."""
    rows = _send("GET", f"/api/v1/orgs/{org}/members", remote)
    columns = ("member", "kind", "role")
    print_rows(rows, as_json, columns, itemgetter(*columns))


@orgs_app.command("add-member")
@with_remote
def orgs_add_member(
    remote: Remote,
    org: OrgArgument,
    member: Annotated[str, typer.Argument(help="A user or service account.")],
    role: Annotated[
        str, typer.Option("--role", help="owner, admin, member (publishes) or viewer (calls).")
    ] = "member",
) -> None:
    """Add a member to an organization, or change its role."""
    _send("PUT", f"/api/v1/orgs/{org}/members/{member}", remote, {"role": role})
    console.print(f"{member} is now {role} of {org}")


@orgs_app.command("remove-member")
@with_remote
def orgs_remove_member(
    remote: Remote,
    org: OrgArgument,
    member: Annotated[str, typer.Argument(help="The member to remove.")],
) -> None:
    """Remove a member from an organization."""
    _send("DELETE", f"/api/v1/orgs/{org}/members/{member}", remote)
    console.print(f"removed {member} from {org}")


# models: grants and visibility --------------------------------------------------------------
models_app = typer.Typer(help="List models; manage their grants and visibility.")


@models_app.callback(invoke_without_command=True)
@with_remote
def models_main(
    remote: Remote,
    ctx: typer.Context,
    as_json: JsonOption = False,
) -> None:
    """List the models you can see (with no command), or manage one model's access."""
    if ctx.invoked_subcommand is None:
        catalog.models(remote, as_json)


@models_app.command("grant")
@with_remote
def grant(
    remote: Remote,
    model: ModelArgument,
    principal: Annotated[str, typer.Argument(help="A user, service account or organization.")],
    right: Annotated[
        str, typer.Option("--right", help="call (read and call) or manage (also publish).")
    ] = "call",
) -> None:
    """Give a principal call or manage rights on a model."""
    path = f"/api/v1/models/{model}/grants/{principal}"
    _send("PUT", path, remote, {"right": right})
    console.print(f"{principal} may now {right} {model}")


@models_app.command("revoke")
@with_remote
def revoke(
    remote: Remote,
    model: ModelArgument,
    principal: Annotated[str, typer.Argument(help="Whose grant to take back.")],
) -> None:
    """Take back a principal's explicit rights on a model."""
    _send("DELETE", f"/api/v1/models/{model}/grants/{principal}", remote)
    console.print(f"revoked {principal}'s grant on {model}")


@models_app.command("grants")
@with_remote
def grants(
    remote: Remote,
    model: ModelArgument,
    as_json: JsonOption = False,
) -> None:
    """List who holds explicit rights on a model."""
    rows = _send("GET", f"/api/v1/models/{model}/grants", remote)
    columns = ("principal", "kind", "right")
    print_rows(rows, as_json, columns, itemgetter(*columns))


@models_app.command("visibility")
@with_remote
def visibility(
    remote: Remote,
    model: ModelArgument,
    level: Annotated[str, typer.Argument(help="private, organization or public.")],
) -> None:
    """Set who may see and call a model: its owner only, its organizations, or everyone."""
    if level not in ("private", "organization", "public"):
        err_console.print("[bold red]error[/]: visibility is private, organization or public")
        raise typer.Exit(2)
    _send("PATCH", f"/api/v1/models/{model}", remote, {"visibility": level})
    console.print(f"{model} is now {level}")
