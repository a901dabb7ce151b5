"""``algora sampling set|show|off owner/name`` (a model's payload sampling rule) and
``algora samples owner/name [REQUEST_ID]`` (its samples, or one sample's payloads)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from algora.cli.common import client_for, console, errors_to_exit, write_json
from algora.cli.options import JsonOption, ModelArgument, Remote, with_remote
from algora.errors import NotFound

__all__ = ["samples", "sampling_app"]

_WHEN = "an ISO 8601 time or a duration before now (30m, 6h, 2d, 1w)"

sampling_app = typer.Typer(
    help="Payload sampling: a share of a model's calls, inputs and outputs kept for its managers.",
    no_args_is_help=True,
)


def _print_rule(rule: dict[str, Any]) -> None:
    if not rule["enabled"]:
        console.print(f"{rule['model']}: sampling is off")
        return
    redacted = ", ".join(rule["redact"]) or "none"
    console.print(
        f"{rule['model']}: sampling {rule['rate']:.4g} of calls, up to {rule['max_bytes']} "
        f"bytes each way; redacted fields: {redacted}"
    )


@sampling_app.command("set")
@with_remote
def set_rule(
    remote: Remote,
    model: ModelArgument,
    rate: Annotated[float, typer.Option("--rate", help="Share of calls sampled (0 < r <= 1).")],
    max_bytes: Annotated[
        int, typer.Option("--max-bytes", help="Bytes kept of each input and output.")
    ] = 65536,
    redact: Annotated[
        list[str] | None,
        typer.Option("--redact", help="A JSON field replaced at any depth (repeatable)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Sample a share of the model's calls (its managers only)."""
    with errors_to_exit():
        rule = client_for(remote).set_sampling(
            model, rate=rate, max_bytes=max_bytes, redact=redact or []
        )
    write_json(rule) if as_json else _print_rule(rule)


@sampling_app.command("show")
@with_remote
def show(remote: Remote, model: ModelArgument, as_json: JsonOption = False) -> None:
    """The model's sampling rule."""
    with errors_to_exit():
        try:
            rule = client_for(remote).sampling(model)
        except NotFound as missing:
            if missing.details.get("sampling") != "off":
                raise
            rule = {"model": model, "enabled": False}
    write_json(rule) if as_json else _print_rule(rule)


@sampling_app.command("off")
@with_remote
def off(remote: Remote, model: ModelArgument) -> None:
    """Stop sampling the model's calls (samples taken stay until they expire)."""
    with errors_to_exit():
        client_for(remote).stop_sampling(model)
    console.print(f"{model}: sampling is off")


@with_remote
def samples(
    remote: Remote,
    model: ModelArgument,
    request_id: Annotated[
        str | None, typer.Argument(help="A sampled call's request id: print its payloads.")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help=f"From: {_WHEN}.")] = None,
    until: Annotated[str | None, typer.Option("--until", help=f"To (now): {_WHEN}.")] = None,
    version: Annotated[str | None, typer.Option("--version", help="One version (1.2.3).")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many (1-1000).")] = 100,
    as_json: JsonOption = False,
) -> None:
    """A model's payload samples, newest first; with REQUEST_ID, that call's input and output."""
    with errors_to_exit():
        client = client_for(remote)
        if request_id is not None:
            write_json(client.sample(model, request_id))
            return
        listed = client.samples(model, since=since, until=until, version=version, limit=limit)
    if as_json:
        write_json(listed)
        return
    table = Table("time (UTC)", "request id", "version", "caller", "in", "out", "note")
    for sample in listed:
        note = sample["error_code"] or ("truncated" if sample["truncated"] else "")
        table.add_row(
            sample["created_at"][:19], sample["request_id"], sample["version"], sample["caller"],
            f"{sample['input_type']} {sample['input_bytes']} B",
            f"{sample['output_type'] or '-'} {sample['output_bytes']} B", note,
        )  # fmt: skip
    console.print(table)
