"""Helpers shared by CLI commands (their shared options: :mod:`algora.cli.options`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from algora.cli.options import Remote
from algora.errors import AlgoraError
from algora.sdk.client import Client

__all__ = [
    "client_for",
    "console",
    "errors_to_exit",
    "print_json",
    "print_rows",
    "server_side",
    "write_json",
]

console = Console()
err_console = Console(stderr=True)


T = TypeVar("T")


@contextmanager
def server_side(command: str) -> Iterator[None]:
    """Around the imports of a server command: on a client install (``pip install algora``)
    it says which extra to install instead of a traceback."""
    try:
        yield
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if not missing or missing.partition(".")[0] == "algora":
            raise  # our own module is missing: a broken install, not a missing extra
        err_console.print(
            f"[bold red]error[/]: {command} runs the server side, which this install lacks "
            f"({missing} is not installed): " + escape("pip install 'algora[server]'"),
            soft_wrap=True,
        )
        raise typer.Exit(1) from None


def client_for(remote: Remote) -> Client:
    return Client(remote.url, remote.key, profile=remote.profile)


@contextmanager
def errors_to_exit() -> Iterator[None]:
    """Print an Algora or connection error as one clear line and exit non-zero."""
    import httpx

    try:
        yield
    except AlgoraError as exc:
        err_console.print(f"[bold red]error[/] ({exc.code}): {exc.message}")
        stack = exc.details.get("stacktrace")
        if stack:
            err_console.print(stack, markup=False, highlight=False)
        raise typer.Exit(1) from None
    except httpx.HTTPError as exc:
        err_console.print(
            f"[bold red]error[/]: cannot reach the gateway ({exc}); is `algora serve` running "
            "and is --url right?"
        )
        raise typer.Exit(1) from None


def run(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with errors_to_exit():
        return func(*args, **kwargs)


def write_json(data: Any) -> None:
    """``data`` as one line of JSON on stdout, plain (for scripts to read)."""
    sys.stdout.write(json.dumps(data) + "\n")


def print_json(data: Any) -> None:
    """``data`` as indented, highlighted JSON (for people to read)."""
    console.print_json(json.dumps(data, default=str))


def print_rows(
    rows: Sequence[T],
    as_json: bool,
    columns: Sequence[str],
    cells: Callable[[T], Sequence[str]],
    *,
    json_out: Callable[[Any], None] = write_json,
) -> None:
    """What a listing command prints: ``rows`` as JSON (by ``json_out``) with ``--json``, else
    a table of ``columns`` with ``cells(row)`` a row."""
    if as_json:
        json_out(rows)
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*cells(row))
    console.print(table)
