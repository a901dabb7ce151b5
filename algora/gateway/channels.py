"""Calls from inside models, on the gateway's side: one private Unix socket per worker.

Each worker gets a channel when it starts (``algora.workers.channel``): a Unix socket in a
private folder (0700) on which this gateway serves its own app, and a random credential that
the worker receives in ``ALGORITHMIA_API_KEY`` and ``ALGORA_KEY``. Requests that arrive on the
socket carry the channel in their ASGI scope, which no client can set: that is how the gateway
knows a request comes from inside a model, and from which worker.

The credential is worth something only on its own worker's socket, and only while that worker
loads its model or serves a call (the pool says which): it then acts as
:func:`algora.auth.delegation.for_load` or :func:`~algora.auth.delegation.for_call` describe.
Between calls, during a batch (whose calls may have different callers) and after the call's
deadline it is refused. A model that sends a key of its own instead is authenticated as that
key; the request still counts as made from inside a model (keys limited to calls from inside
models are accepted) and its audit row names the call being served as its parent.

Why a socket per worker and state in this process rather than a signed token: a model creates
its client once, when it loads, and keeps it for every call, so the credential it holds cannot
change per call; what it means must be looked up when it is used, from the call its worker is
serving right now. Only the gateway that started a worker knows that, and only that gateway is
reachable from the worker (its socket is the only way out of the sandbox), so nothing needs to
be shared between gateways: several gateways on one database each serve their own workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import uvicorn
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.server import ServerState

from algora.auth.delegation import for_call, for_load, model_name
from algora.auth.keys import generate_key, parse_authorization
from algora.auth.principals import Caller
from algora.db.tables import Model
from algora.errors import PermissionDenied, Unauthenticated
from algora.workers.channel import SOCKET_NAME, ChannelOpener

__all__ = ["CallOrigin", "Channel", "Channels", "channel_of", "from_worker"]

logger = logging.getLogger(__name__)

_SCOPE_KEY = "algora.channel"
_MAX_SOCKET_PATH = 100
"""Unix socket paths are limited to 107 bytes; longer data folders use a private temp folder."""


@dataclass(frozen=True)
class CallOrigin:
    """What a call carries to its worker's channel (``CallRequest.origin``)."""

    caller: Caller
    model: Model
    request_id: str
    session: str
    deadline: float
    """``time.monotonic()`` when the call runs out of time."""


def channel_of(connection: HTTPConnection) -> Channel | None:
    """The worker channel a request arrived on; None for every request from outside."""
    channel = connection.scope.get(_SCOPE_KEY)
    return channel if isinstance(channel, Channel) else None


def from_worker(scope: Scope) -> bool:
    """Whether an ASGI scope is a request that arrived on a worker's channel."""
    return isinstance(scope.get(_SCOPE_KEY), Channel)


class Channel:
    """One worker's socket and credential, and what its worker is doing."""

    def __init__(
        self, model: Model, folder: Path, temporary: bool, version_id: int | None = None
    ) -> None:
        self.model = model
        self.version_id = version_id
        """The version whose worker holds the channel; None for a smoke test's."""
        self._folder = folder
        self._temporary = temporary
        self._token = generate_key().secret
        self._state = "loading"
        self._origin: CallOrigin | None = None
        self._caller: Caller | None = None
        self._server: asyncio.Server | None = None
        self._socket: socket.socket | None = None
        self._connections: ServerState | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.peer = f"model:{model_name(model)}"

    @property
    def folder(self) -> Path:
        return self._folder

    @property
    def env(self) -> Mapping[str, str]:
        return {"ALGORITHMIA_API_KEY": self._token, "ALGORA_KEY": self._token}

    @property
    def request_id(self) -> str | None:
        """The call the worker is serving, if it serves exactly one."""
        return self._origin.request_id if self._origin is not None else None

    def serving(self, origins: Sequence[object]) -> None:
        self._caller = None
        self._origin = None
        if self._state == "closed":
            return
        if not origins:
            self._state = "idle"
        elif len(origins) > 1:
            self._state = "batch"
        elif isinstance(origins[0], CallOrigin):
            self._state, self._origin = "call", origins[0]
        else:
            self._state = "idle"  # a call without an origin (a smoke test) acts for nobody

    def caller_for(self, authorization: str | None) -> Caller | None:
        """The caller the worker's credential stands for now, or None when the request does
        not carry it (it is then authenticated as any key). Raises when the credential is
        worth nothing now."""
        secret = parse_authorization(authorization)
        if secret is None or not hmac.compare_digest(secret.encode(), self._token.encode()):
            return None
        if self._caller is not None:
            origin = self._origin
            if origin is None or time.monotonic() < origin.deadline:
                return self._caller
        if self._state == "loading":
            self._caller = for_load(self.model)
            return self._caller
        origin = self._origin
        if self._state == "call" and origin is not None:
            if time.monotonic() >= origin.deadline:
                raise Unauthenticated("the call this model was serving has run out of time")
            self._caller = for_call(
                origin.caller,
                origin.model,
                request_id=origin.request_id,
                session=origin.session,
                deadline=origin.deadline,
            )
            return self._caller
        if self._state == "batch":
            raise PermissionDenied(
                "this model is serving a batch of calls (predict_batch), which may come from "
                "several callers: its credential acts for none of them"
            )
        raise Unauthenticated("this model's credential is valid only while the model serves a call")

    async def start(self, app: ASGIApp) -> None:
        path = self._folder / SOCKET_NAME
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(path))
            path.chmod(0o600)
            config = uvicorn.Config(
                _Tagged(app, self),
                lifespan="off",
                log_config=None,
                access_log=False,
                proxy_headers=False,
                server_header=False,
                date_header=False,
                ws="none",
                interface="asgi3",
            )
            config.load()
            state = ServerState()

            def protocol() -> asyncio.Protocol:
                # What uvicorn.Server.startup does for each connection; uvicorn types the class
                # as a bare asyncio.Protocol, hence the ignore.
                made: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]
                    config=config, server_state=state, app_state={}
                )
                return made

            loop = asyncio.get_running_loop()
            self._server = await loop.create_unix_server(protocol, sock=sock, backlog=64)
            self._socket = sock
            self._connections = state
            self._loop = loop
        except BaseException:
            sock.close()
            raise

    async def close(self) -> None:
        if self._state == "closed":
            return
        self._state, self._origin, self._caller = "closed", None, None
        loop = self._loop
        if loop is not None and loop is not asyncio.get_running_loop():
            # A pool on another loop (a publish smoke test): the server lives on its own.
            if loop.is_closed():  # its server can no longer be closed: close its socket
                if self._socket is not None:
                    self._socket.close()
                await asyncio.to_thread(self._remove)
            else:
                done = asyncio.run_coroutine_threadsafe(self._stop_serving(), loop)
                await asyncio.wrap_future(done)
            return
        await self._stop_serving()

    async def _stop_serving(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._connections is not None:
            for connection in list(self._connections.connections):
                connection.shutdown()
        await asyncio.to_thread(self._remove)

    def _remove(self) -> None:
        if self._temporary:
            shutil.rmtree(self._folder, ignore_errors=True)
            return
        with contextlib.suppress(FileNotFoundError):
            (self._folder / SOCKET_NAME).unlink()
        with contextlib.suppress(OSError):
            self._folder.rmdir()


class _Tagged:
    """The app, with the channel in the scope of every request that arrives on its socket."""

    def __init__(self, app: ASGIApp, channel: Channel) -> None:
        self._app = app
        self._channel = channel

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, _SCOPE_KEY: self._channel, "client": (self._channel.peer, 0)}
        await self._app(scope, receive, send)


class Channels:
    """Opens worker channels that serve one app. Until an app is attached, none are opened
    (workers then have no way to the gateway)."""

    def __init__(self, data_dir: Path) -> None:
        self._root = data_dir / "channels"
        self._app: ASGIApp | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Serve every channel on the running loop (the server's), whichever loop opens it: a
        publish smoke test runs its pool on a loop of its own, and what its model calls must
        run where the platform's pools live."""
        self._loop = asyncio.get_running_loop()

    def attach(self, app: ASGIApp) -> None:
        """Serve ``app`` on every channel opened from now on."""
        self._app = app

    def opener(self, model: Model, version_id: int | None = None) -> ChannelOpener | None:
        """What a worker spec of ``model`` (``version_id``'s, when known) opens its channels
        with; None without an app."""
        if self._app is None:
            return None
        opener: ChannelOpener = partial(self.open, model, version_id)
        return opener

    async def open(self, model: Model, version_id: int | None = None) -> Channel:
        home = self._loop
        if home is not None and home is not asyncio.get_running_loop() and not home.is_closed():
            opened = asyncio.run_coroutine_threadsafe(self._open(model, version_id), home)
            return await asyncio.wrap_future(opened)
        return await self._open(model, version_id)

    async def _open(self, model: Model, version_id: int | None) -> Channel:
        if self._app is None:
            raise RuntimeError("no app to serve on worker channels")
        folder, temporary = await asyncio.to_thread(self._new_folder)
        channel = Channel(model, folder, temporary, version_id)
        try:
            await channel.start(self._app)
        except BaseException:
            await channel.close()
            raise
        return channel

    def _new_folder(self) -> tuple[Path, bool]:
        name = secrets.token_hex(8)
        if len(os.fsencode(self._root / name / SOCKET_NAME)) <= _MAX_SOCKET_PATH:
            self._root.mkdir(mode=0o700, exist_ok=True)
            folder = self._root / name
            folder.mkdir(mode=0o700)
            return folder, False
        return Path(tempfile.mkdtemp(prefix="algora-channel-")), True
