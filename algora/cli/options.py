"""The options that many commands take: where the gateway is, which key, which profile, and
``--json``."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["JsonOption", "KeyOption", "ProfileOption", "UrlOption"]

UrlOption = Annotated[
    str | None, typer.Option("--url", help="Gateway URL (else ALGORA_URL, else `algora login`).")
]
KeyOption = Annotated[
    str | None, typer.Option("--key", help="API key (else ALGORA_KEY, else `algora login`).")
]
ProfileOption = Annotated[str, typer.Option("--profile", help="Saved profile to use.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
