"""Options and helpers shared by CLI commands."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from algora.errors import AlgoraError
from algora.sdk.client import Client

__all__ = ["KeyOption", "ProfileOption", "UrlOption", "client_for", "console", "errors_to_exit"]

console = Console()
err_console = Console(stderr=True)

UrlOption = Annotated[
    str | None, typer.Option("--url", help="Gateway URL (else ALGORA_URL, else `algora login`).")
]
KeyOption = Annotated[
    str | None, typer.Option("--key", help="API key (else ALGORA_KEY, else `algora login`).")
]
ProfileOption = Annotated[str, typer.Option("--profile", help="Saved profile to use.")]

T = TypeVar("T")


def client_for(url: str | None, key: str | None, profile: str = "default") -> Client:
    return Client(url, key, profile=profile)


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
