"""A worker's channel to the gateway: how model code calls models and reads data.

The pool opens one channel per worker before starting it (the spec's ``channel`` opener) and
closes it when the worker exits. A channel is a private Unix socket, served by the gateway
(``algora.gateway.channels``), plus a credential for the model's code, given to the worker as
environment variables. The worker runtime forwards a loopback TCP port to the socket
(``algora/runtime/gateway.py``), since HTTP clients speak TCP; in the sandbox, the socket's
folder is the only thing of the gateway the worker can reach.

The pool tells the channel what its worker is doing: loading (from open until ``serving`` is
first called), serving calls (their ``origin``\\ s, opaque here) or idle (none). The gateway
decides from that what the credential may do: see ``algora.auth.delegation``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

__all__ = ["SANDBOX_FOLDER", "SOCKET_NAME", "ChannelOpener", "WorkerChannel"]

SOCKET_NAME = "gateway.sock"
"""The socket's name in the channel's folder."""
SANDBOX_FOLDER = "/run/algora"
"""Where a sandboxed worker sees the channel's folder (read-only)."""


class WorkerChannel(Protocol):
    """One worker's channel, as the pool and the backend see it."""

    @property
    def folder(self) -> Path:
        """The private folder holding :data:`SOCKET_NAME`, on the gateway's side."""
        ...

    @property
    def env(self) -> Mapping[str, str]:
        """Environment variables that give the model its credential."""
        ...

    def serving(self, origins: Sequence[object]) -> None:
        """The worker now serves these calls' origins (``CallRequest.origin``); none: idle."""
        ...

    async def close(self) -> None:
        """Stop serving the socket and remove it; safe to call more than once."""
        ...


ChannelOpener = Callable[[], Awaitable[WorkerChannel]]
"""Opens a new channel for a worker of one model version (``WorkerSpec.channel``)."""
