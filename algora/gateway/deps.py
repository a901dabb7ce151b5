"""Request-scoped helpers shared by every protocol adapter."""

from __future__ import annotations

import asyncio
from typing import cast

from fastapi import Request

from algora.auth.principals import Caller
from algora.errors import PayloadTooLarge, PermissionDenied
from algora.gateway.auditing import trail_of
from algora.gateway.channels import channel_of
from algora.platform import Platform

__all__ = ["current_caller", "internal_call", "platform_of", "read_body"]


def platform_of(request: Request) -> Platform:
    return cast(Platform, request.app.state.platform)


async def current_caller(request: Request) -> Caller:
    """Authenticate the request's key (cached; the database is read only on a miss).

    On a worker's channel the model's own credential stands for the call it serves (see
    ``algora.gateway.channels``); the audit row then names that call as the parent.
    """
    authenticator = platform_of(request).authenticator
    header = request.headers.get("authorization")
    channel = channel_of(request)
    trail = trail_of(request)
    caller = channel.caller_for(header) if channel is not None else None
    if caller is None:
        caller = authenticator.cached(header)
    if caller is None:
        address = request.client.host if request.client else None
        caller = await asyncio.to_thread(authenticator.authenticate, header, address)
    trail.caller = caller
    if caller.delegation is not None:
        trail.parent_request_id = caller.delegation.request_id
    elif channel is not None:
        trail.parent_request_id = channel.request_id
    if caller.model_calls_only and not internal_call(request):
        raise PermissionDenied(
            f"key '{caller.key_id}' may only be used by calls made from inside models"
        )
    return caller


def internal_call(request: Request) -> bool:
    """Whether the request is a call made from inside a model: it arrived on a worker's
    channel, a socket only that worker reaches. No header or key makes a request from outside
    look like one."""
    return channel_of(request) is not None


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
