"""A call whose client hangs up stops waiting: it leaves the model's queue, as nobody is left to
answer. Its audit row says ``client_disconnected`` with status 499 (no answer was sent)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.types import Message, Receive

__all__ = ["CLIENT_GONE_STATUS", "ClientGone", "unless_hung_up"]

T = TypeVar("T")

CLIENT_GONE_STATUS = 499
"""The audit row's status for a call whose client hung up before its answer."""


class ClientGone(Exception):
    """The client disconnected while its call was waiting or running."""


async def unless_hung_up(receive: Receive, work: Awaitable[T]) -> T:
    """Await ``work`` (the request's body already read); if the client disconnects first,
    cancel it and raise :class:`ClientGone`. A call still queued then leaves the queue."""
    task = asyncio.current_task()
    assert task is not None
    gone = False
    watcher = asyncio.ensure_future(receive())

    def on_message(done: asyncio.Future[Message]) -> None:
        nonlocal gone
        if done.cancelled() or done.exception() is not None:
            return
        if done.result().get("type") == "http.disconnect":
            gone = True
            task.cancel()

    watcher.add_done_callback(on_message)
    try:
        return await work
    except asyncio.CancelledError:
        if gone and task.uncancel() == 0:
            raise ClientGone from None
        raise
    finally:
        watcher.remove_done_callback(on_message)
        watcher.cancel()
