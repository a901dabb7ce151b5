"""The options and arguments that many commands take: where the gateway is, which key, which
profile, ``--json``, and the model a command acts on.

A command that talks to the gateway takes its ``--url``, ``--key`` and ``--profile`` through
:func:`with_remote`, as one :class:`Remote`, rather than spelling the three options again.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any, Concatenate, NamedTuple, ParamSpec, TypeVar

import typer

__all__ = [
    "JsonOption",
    "KeyOption",
    "ModelArgument",
    "ProfileOption",
    "Remote",
    "UrlOption",
    "with_remote",
]

UrlOption = Annotated[
    str | None, typer.Option("--url", help="Gateway URL (else ALGORA_URL, else `algora login`).")
]
KeyOption = Annotated[
    str | None, typer.Option("--key", help="API key (else ALGORA_KEY, else `algora login`).")
]
ProfileOption = Annotated[str, typer.Option("--profile", help="Saved profile to use.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ModelArgument = Annotated[str, typer.Argument(help="owner/name")]

P = ParamSpec("P")
R = TypeVar("R")


class Remote(NamedTuple):
    """The gateway a command talks to, as its options give it (``None``: ask the environment,
    then the saved profile)."""

    url: str | None = None
    key: str | None = None
    profile: str = "default"


_REMOTE_OPTIONS = (
    inspect.Parameter("url", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=UrlOption),
    inspect.Parameter("key", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=KeyOption),
    inspect.Parameter(
        "profile", inspect.Parameter.KEYWORD_ONLY, default="default", annotation=ProfileOption
    ),
)


def with_remote(command: Callable[Concatenate[Remote, P], R]) -> Callable[..., R]:
    """``command`` with ``--url``, ``--key`` and ``--profile`` after its own options, handed to
    it as its first argument, a :class:`Remote`.

    Typer reads a command's options from its signature, so the wrapper shows Typer the
    command's own parameters (their annotations resolved) followed by the three options.
    """
    hints = typing.get_type_hints(command, include_extras=True)
    own = list(inspect.signature(command).parameters.values())[1:]
    parameters = [p.replace(annotation=hints[p.name]) for p in own] + list(_REMOTE_OPTIONS)

    @functools.wraps(command)
    def wrapper(
        *args: Any,
        url: str | None = None,
        key: str | None = None,
        profile: str = "default",
        **kwargs: Any,
    ) -> R:
        return command(Remote(url, key, profile), *args, **kwargs)

    signature = inspect.Signature(parameters, return_annotation=hints.get("return"))
    # Typer reads both; functools.wraps copied the command's own, which still name ``remote``.
    # inspect.signature honours __signature__ on any callable; mypy knows no such attribute.
    wrapper.__signature__ = signature  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper
