"""Request-scoped helpers shared by every protocol adapter."""

from __future__ import annotations

import asyncio
from typing import cast

from fastapi import Request

from algora.auth.principals import Caller
from algora.errors import PayloadTooLarge
from algora.gateway.auditing import trail_of
from algora.gateway.platform import Platform

__all__ = ["current_caller", "platform_of", "read_body", "writing_caller"]


def platform_of(request: Request) -> Platform:
    return cast(Platform, request.app.state.platform)


async def current_caller(request: Request) -> Caller:
    """Authenticate the request's key (cached; the database is read only on a miss)."""
    authenticator = platform_of(request).authenticator
    header = request.headers.get("authorization")
    caller = authenticator.cached(header)
    if caller is None:
        caller = await asyncio.to_thread(authenticator.authenticate, header)
    trail_of(request).caller = caller
    return caller


async def writing_caller(request: Request) -> Caller:
    """The caller of a management write (publish, changes), admitted by its key's own rate
    limit: the same bucket as its model calls."""
    caller = await current_caller(request)
    platform_of(request).limiter.check(caller.key_id, None, caller.limits)
    return caller


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
