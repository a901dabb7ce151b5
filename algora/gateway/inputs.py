"""One decoder for what a client sends: JSON bodies, numbers in queries, paths.

Every adapter that parses JSON calls :func:`decode_json` (FastAPI's own body parsing reaches it
through :class:`StrictJSONRequest`, which :class:`~algora.gateway.permissions.PermissionRoute`
installs), so one set of rules holds everywhere and every refusal is an ``InvalidInput`` (400)
that says why, never a 500:

- the text is UTF-8 (no lone surrogates, no other encodings);
- it nests at most :data:`MAX_DEPTH` arrays and objects;
- its numbers are finite (no ``NaN``, ``Infinity``, nor ``1e999999``, which Python reads as
  infinity) and its integers have at most 4300 digits (Python's own limit);
- its strings hold no lone surrogate (``"\\ud800"``), which no UTF-8 text can carry on.

Large bodies are decoded in a thread, so that parsing does not stall the event loop.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from algora.errors import InvalidInput

__all__ = [
    "MAX_DEPTH",
    "MAX_INT64",
    "StrictJSONRequest",
    "decode_json",
    "decode_json_async",
    "finite_float",
    "int64_query_params",
    "strict_json_handler",
]

MAX_DEPTH = 512
"""Arrays and objects nested deeper than this are refused (Python's parser itself gives up
near 1000, with a RecursionError)."""
MAX_INT64 = 2**63 - 1
"""The largest integer a database column holds."""
OFF_LOOP_BYTES = 64 * 1024
"""Bodies larger than this are decoded in a thread."""

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

_SURROGATE = re.compile("[\ud800-\udfff]")


def _refuse_constant(name: str) -> Any:
    raise InvalidInput(f"the JSON holds {name}, which is not a number JSON allows")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidInput(f"the JSON number {text[:40]} is too large to be a finite number")
    return value


def _strings(value: Any) -> Iterator[str]:
    """Every string in a decoded value, keys included, and a check of its depth; iterative, so
    that a deep value cannot exhaust the stack."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise InvalidInput(f"the JSON is nested more than {MAX_DEPTH} levels deep")
            if isinstance(item, dict):
                yield from item.keys()
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)


def decode_json(raw: bytes | str, what: str = "the request body") -> Any:
    """The JSON value ``raw`` holds, or InvalidInput saying what is wrong with it."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidInput(
                f"{what} is not UTF-8 (byte {error.start} is not valid UTF-8)"
            ) from None
    else:
        text = raw
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)
    except RecursionError:
        raise InvalidInput(f"{what} is JSON nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, and integers past Python's 4300 digits
        raise InvalidInput(f"{what} is not valid JSON: {str(error)[:200]}") from None
    for string in _strings(value):
        if _SURROGATE.search(string):
            raise InvalidInput(f"{what} holds a lone UTF-16 surrogate (\\ud800-\\udfff)")
    return value


async def decode_json_async(raw: bytes, what: str = "the request body") -> Any:
    """:func:`decode_json`, in a thread for a large body."""
    if len(raw) > OFF_LOOP_BYTES:
        return await asyncio.to_thread(decode_json, raw, what)
    return decode_json(raw, what)


def finite_float(text: str, name: str) -> float:
    """A finite number from a query value, or InvalidInput naming ``name``."""
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(f"{name} must be a number, not '{text[:40]}'") from None
    if not math.isfinite(value):
        raise InvalidInput(f"{name} must be a finite number, not '{text[:40]}'")
    return value


class StrictJSONRequest(Request):
    """A request whose ``json()`` is :func:`decode_json` (in a thread for a large body)."""

    async def json(self) -> Any:
        if not hasattr(self, "_strict_json"):
            self._strict_json = await decode_json_async(await self.body())
        return self._strict_json


def _json_media(content_type: str | None) -> bool:
    """Whether FastAPI parses a body of this type as JSON (``application/json``, ``+json``)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    maintype, _, subtype = media.partition("/")
    return maintype == "application" and (subtype == "json" or subtype.endswith("+json"))


def int64_query_params(route: APIRoute) -> tuple[str, ...]:
    """The names of a route's integer query parameters (a database holds at most 64 bits)."""
    names = []
    for field in route.dependant.query_params:
        annotation = field.field_info.annotation
        if annotation is int or annotation == int | None:
            names.append(field.alias)
    return tuple(names)


def _check_int64(request: Request, names: tuple[str, ...]) -> None:
    for name in names:
        value = request.query_params.get(name)
        if value is None:
            continue
        digits = value.strip().lstrip("+-")
        # Python's int() also reads '1_000' and other digits; only long values need a look.
        if len(digits) >= 19 and digits.isdecimal() and abs(int(digits)) > MAX_INT64:
            raise InvalidInput(f"{name} is out of range: at most {MAX_INT64}")


def strict_json_handler(route: APIRoute, handler: Handler) -> Handler:
    """``handler`` (a FastAPI route's), first refusing integers past 64 bits in its query and
    decoding its JSON body with :func:`decode_json`; refusals reach the app's error handlers
    (FastAPI's own parsing would turn them into a bare 'error parsing the body')."""
    ints = int64_query_params(route)
    parses_json = route.body_field is not None

    async def strict(request: Request) -> Response:
        _check_int64(request, ints)
        if not parses_json:
            return await handler(request)
        strict_request = StrictJSONRequest(request.scope, request.receive)
        if _json_media(request.headers.get("content-type")) and await strict_request.body():
            await strict_request.json()
        return await handler(strict_request)

    return strict
