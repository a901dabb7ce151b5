"""Commands that read and call: models, versions, call, login, whoami, keys."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from algora.cli.common import client_for, console, errors_to_exit, print_json, print_rows
from algora.cli.options import JsonOption, ModelArgument, ProfileOption, Remote, with_remote
from algora.sdk.client import raise_for_error
from algora.sdk.profiles import resolve_connection, save_profile

__all__ = ["call", "keys_app", "login", "models", "versions", "whoami"]


def _model_cells(row: dict[str, Any]) -> tuple[str, ...]:
    return (row["full_name"], row["description"], row["visibility"], str(row["deprecated"]))


def _version_cells(row: dict[str, Any]) -> tuple[str, ...]:
    content_hash, created = (row["content_hash"] or "")[:12], str(row["created_at"])[:19]
    return (row["version"], row["status"], content_hash, created, str(row["deprecated"]))


def models(remote: Remote, as_json: bool) -> None:
    """List the models you can see (``algora models`` with no command)."""
    with errors_to_exit():
        rows = client_for(remote).models()
    columns = ("model", "description", "visibility", "deprecated")
    print_rows(rows, as_json, columns, _model_cells, json_out=print_json)


@with_remote
def versions(
    remote: Remote,
    model: ModelArgument,
    version: Annotated[str | None, typer.Argument(help="Show one version in full.")] = None,
    show: Annotated[
        str | None,
        typer.Option("--show", help="With VERSION: lock, schema, lineage, log or sbom."),
    ] = None,
    deprecate: Annotated[bool, typer.Option("--deprecate", help="Deprecate VERSION.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List a model's versions, or show one version's details, lock, schema, lineage, log, SBOM."""
    with errors_to_exit():
        client = client_for(remote)
        if version is None:
            rows = client.versions(model)
            columns = ("version", "status", "content hash", "created", "deprecated")
            print_rows(rows, as_json, columns, _version_cells, json_out=print_json)
            return
        if deprecate:
            print_json(client.deprecate(model, version))
            return
        base = f"/api/v1/models/{model}/versions/{version}"
        if show == "lock":
            response = client.request("GET", base + "/lock")
            if response.status_code >= 400:
                raise_for_error(response)
            sys.stdout.write(response.text)
        elif show == "sbom":
            response = client.request("GET", base + "/sbom")
            if response.status_code >= 400:
                raise_for_error(response)
            sys.stdout.write(response.text.rstrip("\n") + "\n")
        elif show == "log":
            sys.stdout.write(client.build_log(model, version)["text"])
        elif show in ("schema", "lineage"):
            print_json(client.get_json(f"{base}/{show}"))
        elif show is None:
            print_json(client.version(model, version))
        else:
            console.print("[bold red]error[/]: --show takes lock, schema, lineage, log or sbom")
            raise typer.Exit(2)


@with_remote
def call(
    remote: Remote,
    model: Annotated[str, typer.Argument(help="owner/name or owner/name/VERSION_SPEC")],
    data: Annotated[
        str | None,
        typer.Argument(help="JSON input; a bare word is sent as text; '-' reads stdin."),
    ] = None,
    text: Annotated[bool, typer.Option("--text", help="Send DATA as text.")] = False,
    file: Annotated[
        Path | None, typer.Option("--file", help="Send this file's bytes (binary input).")
    ] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Seconds.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Print the result with metadata.")] = False,
) -> None:
    """Call a model and print its result."""
    payload: Any
    if file is not None:
        payload = file.read_bytes()
    else:
        raw = sys.stdin.read() if data == "-" else (data or "")
        if text:
            payload = raw
        else:
            try:
                payload = json.loads(raw) if raw else None
            except ValueError:
                payload = raw
    with errors_to_exit():
        response = client_for(remote).model(model).call_full(payload, timeout=timeout)
    if full:
        result = response.result
        if isinstance(result, bytes):
            result = f"<{len(result)} bytes>"
        print_json(
            {
                "result": result,
                "metadata": {"content_type": response.content_type, "duration": response.duration},
                "version": response.version,
            }
        )
    elif isinstance(response.result, bytes):
        sys.stdout.buffer.write(response.result)
    elif isinstance(response.result, str):
        sys.stdout.write(response.result + "\n")
    else:
        sys.stdout.write(json.dumps(response.result) + "\n")


def login(
    url: Annotated[str, typer.Option("--url", help="Gateway URL.", prompt=True)],
    key: Annotated[str, typer.Option("--key", help="API key.", prompt=True, hide_input=True)],
    profile: ProfileOption = "default",
) -> None:
    """Check a URL and key, then save them as a profile for the CLI and the SDK."""
    with errors_to_exit():
        me = client_for(Remote(url, key)).whoami()
    path = save_profile(url, key, profile)
    console.print(f"logged in to {url} as [bold]{me['name']}[/] (profile '{profile}' in {path})")


@with_remote
def whoami(remote: Remote) -> None:
    """Show who the configured key belongs to."""
    connection = resolve_connection(remote.url, remote.key, remote.profile)
    with errors_to_exit():
        me = client_for(remote).whoami()
    console.print(f"{me['name']} at {connection.url} (key {me['key_id']})")


keys_app = typer.Typer(
    help="Create, list, revoke and rate-limit your API keys.", no_args_is_help=True
)


@keys_app.command("create")
@with_remote
def keys_create(
    remote: Remote,
    name: Annotated[str, typer.Option("--name", help="What the key is for.")] = "",
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="What the key may do; repeat for several (call, call:OWNER/*, models:read, "
            "models:publish, models:manage, aliases:write, aliases:approve, data:read[:PATTERN], "
            "data:write[:PATTERN], keys:manage, principals:manage, audit:read, metrics:read). "
            "Default: the scopes of the key you use.",
        ),
    ] = None,
    expires_in_days: Annotated[
        int | None, typer.Option("--expires-in-days", help="Expire after this many days.", min=1)
    ] = None,
    model_calls_only: Annotated[
        bool, typer.Option("--model-calls-only", help="Usable only by calls from inside models.")
    ] = False,
    principal: Annotated[
        str | None, typer.Option("--for", help="A service account you manage.")
    ] = None,
) -> None:
    """Create a key; its secret is shown once."""
    body: dict[str, object] = {"name": name, "model_calls_only": model_calls_only}
    if scope:
        body["scopes"] = scope
    if expires_in_days is not None:
        body["expires_in_days"] = expires_in_days
    if principal is not None:
        body["principal"] = principal
    with errors_to_exit():
        client = client_for(remote)
        response = client.request("POST", "/api/v1/keys", json=body)
        raise_for_error(response)
    created: dict[str, Any] = response.json()
    scopes = " ".join(created.get("scopes") or [])
    expires = created.get("expires_at")
    console.print(
        f"key id {created['key_id']} for {created.get('principal')} (scopes: {scopes}"
        + (f"; expires {str(expires)[:19]}" if expires else "")
        + "); secret (shown once):"
    )
    sys.stdout.write(created["key"] + "\n")


def _last_used(row: dict[str, Any]) -> str:
    when = str(row["last_used_at"] or "")[:19]
    where = row.get("last_used_address")
    return f"{when} from {where}" if when and where else when


@keys_app.command("list")
@with_remote
def keys_list(remote: Remote) -> None:
    """List your keys (never their secrets)."""
    with errors_to_exit():
        rows = client_for(remote).get_json("/api/v1/keys")
    table = Table("key id", "name", "scopes", "expires", "last used", "revoked", "rate limit")
    for row in rows:
        rate = row.get("rate_per_second")
        table.add_row(
            row["key_id"],
            row["name"],
            " ".join(row.get("scopes") or []),
            str(row.get("expires_at") or "")[:19],
            _last_used(row),
            str(row["revoked"]),
            "" if rate is None else f"{rate:g}/s burst {row.get('burst') or 'default'}",
        )
    console.print(table)


@keys_app.command("revoke")
@with_remote
def keys_revoke(
    remote: Remote,
    key_id: Annotated[str, typer.Argument(help="The key id to revoke.")],
) -> None:
    """Revoke a key at once."""
    with errors_to_exit():
        response = client_for(remote).request("DELETE", f"/api/v1/keys/{key_id}")
        raise_for_error(response)
    console.print(f"revoked {key_id}")


@keys_app.command("limit")
@with_remote
def keys_limit(
    remote: Remote,
    key_id: Annotated[str, typer.Argument(help="The key id to limit.")],
    rate: Annotated[
        float | None, typer.Option("--rate", help="Calls a second, on average.", min=0.0)
    ] = None,
    burst: Annotated[
        int | None,
        typer.Option(
            "--burst", help="Calls at once after a quiet spell (default: --rate's).", min=1
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Limit only calls to owner/name (or owner/*) with this key."),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the limit instead.")] = False,
) -> None:
    """Set a key's rate limit, or its limit for one model; past it calls get 429."""
    if clear == (rate is not None) or (rate is not None and rate <= 0):
        console.print("[bold red]error[/]: give --rate (greater than 0) or --clear")
        raise typer.Exit(2)
    with errors_to_exit():
        client = client_for(remote)
        if model is None:
            limits = {"rate_per_second": rate, "burst": burst}
            response = client.request("PATCH", f"/api/v1/keys/{key_id}", json=limits)
            raise_for_error(response)
        else:
            path = f"/api/v1/keys/{key_id}/model-limits"
            entries = [e for e in client.get_json(path) if e["model"] != model]
            if rate is not None:
                entries.append({"model": model, "rate_per_second": rate, "burst": burst})
            response = client.request("PUT", path, json=entries)
            raise_for_error(response)
    target = f"{key_id} for {model}" if model else key_id
    if clear:
        console.print(f"removed the rate limit of {target}")
    else:
        shown = f"burst {burst}" if burst is not None else "default burst"
        console.print(f"limited {target} to {rate:g} calls/s ({shown})")
