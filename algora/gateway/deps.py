"""Request-scoped helpers shared by every protocol adapter."""

from __future__ import annotations

import asyncio
from typing import cast

from fastapi import Request

from algora.auth.principals import Caller
from algora.errors import PayloadTooLarge, PermissionDenied
from algora.gateway.auditing import trail_of
from algora.gateway.platform import Platform

__all__ = ["current_caller", "internal_call", "platform_of", "read_body"]


def platform_of(request: Request) -> Platform:
    return cast(Platform, request.app.state.platform)


async def current_caller(request: Request) -> Caller:
    """Authenticate the request's key (cached; the database is read only on a miss)."""
    authenticator = platform_of(request).authenticator
    header = request.headers.get("authorization")
    caller = authenticator.cached(header)
    if caller is None:
        address = request.client.host if request.client else None
        caller = await asyncio.to_thread(authenticator.authenticate, header, address)
    trail_of(request).caller = caller
    if caller.model_calls_only and not internal_call(request):
        raise PermissionDenied(
            f"key '{caller.key_id}' may only be used by calls made from inside models"
        )
    return caller


def internal_call(request: Request) -> bool:
    """Whether the request is a call made from inside a model (by the worker-side SDK).

    The seam for keys limited to model-to-model calls. The marker (a credential the gateway
    hands its workers, sent in a header) is defined by the issue that builds model-to-model
    calls; until then no request carries it, so such keys are refused everywhere. A header a
    client could simply set must never be enough.
    """
    del request
    return False


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing more than ``limit`` bytes before reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the request body is larger than the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request body is larger than the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)
