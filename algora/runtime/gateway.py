"""The way from a model to the gateway: a loopback TCP port forwarded to the worker's socket.

Model code calls models and reads data over HTTP (Algorithmia's client, Algora's SDK, any HTTP
library); the gateway serves each worker on a private Unix socket (docs/protocol.md, "calls
from inside models"). This module listens on ``127.0.0.1`` at a free port and copies bytes
between each connection to it and a new connection to the socket, both ways, without reading
them. :func:`start` sets ``ALGORITHMIA_API``, ``ALGORA_URL`` and ``ALGORITHM_QUEUE_READER_URL``
(where Algorithmia's ``report_insights`` posts) to that address (the gateway put the credential
in ``ALGORITHMIA_API_KEY`` and ``ALGORA_KEY``), so that ``Algorithmia.client()`` and
``algora.Client()`` need no arguments.

One thread with a selector serves every connection: a thread's stack counts against the
worker's memory limit (RLIMIT_DATA), so there are no threads per connection. Standard library
only.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import threading

__all__ = ["start"]

_CHUNK = 64 * 1024
_HIGH_WATER = 256 * 1024
"""Bytes buffered for one direction before its source is no longer read (back pressure)."""
_CONNECT_TIMEOUT = 10.0
_STACK_SIZE = 256 * 1024


def start(socket_path: str) -> str:
    """Forward a free loopback port to ``socket_path``; set the clients' environment; return
    the URL. Call it before any user code runs (it sets the thread stack size for a moment)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    forwarder = _Forwarder(listener, socket_path)
    previous = threading.stack_size(_STACK_SIZE)
    try:
        threading.Thread(target=forwarder.run, name="algora-gateway", daemon=True).start()
    finally:
        threading.stack_size(previous)
    url = f"http://127.0.0.1:{port}"
    os.environ["ALGORITHMIA_API"] = url
    os.environ["ALGORA_URL"] = url
    os.environ["ALGORITHM_QUEUE_READER_URL"] = url  # where Algorithmia's report_insights posts
    for name in ("NO_PROXY", "no_proxy"):  # a proxy from the environment must not intercept
        hosts = [h for h in os.environ.get(name, "").split(",") if h.strip()]
        os.environ[name] = ",".join([*hosts, "127.0.0.1"])
    return url


class _Link:
    """One forwarded connection: ``client`` (TCP, from the model) and ``upstream`` (the socket)."""

    __slots__ = ("buffers", "closed", "ends", "sockets")

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.sockets = (client, upstream)
        self.buffers = (bytearray(), bytearray())  # bytes waiting to be written TO each socket
        self.ends = [False, False]  # whether each socket has sent its end of stream
        self.closed = False

    def events(self, side: int) -> int:
        other = 1 - side
        wanted = 0
        if not self.ends[side] and len(self.buffers[other]) < _HIGH_WATER:
            wanted |= selectors.EVENT_READ
        if self.buffers[side]:
            wanted |= selectors.EVENT_WRITE
        return wanted

    def done(self) -> bool:
        return all(self.ends) and not any(self.buffers)


class _Forwarder:
    def __init__(self, listener: socket.socket, socket_path: str) -> None:
        self._listener = listener
        self._path = socket_path
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ, None)
        self._registered: dict[socket.socket, int] = {}

    def run(self) -> None:
        while True:
            for key, mask in self._selector.select():
                if key.data is None:
                    self._accept()
                    continue
                link, side = key.data
                if link.closed:
                    continue
                try:
                    self._serve(link, side, mask)
                except OSError:
                    self._close(link)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return  # gone before we took it, or out of descriptors for a moment
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.settimeout(_CONNECT_TIMEOUT)
            upstream.connect(self._path)
        except OSError:
            client.close()
            upstream.close()
            return
        client.setblocking(False)
        upstream.setblocking(False)
        link = _Link(client, upstream)
        self._update(link)

    def _serve(self, link: _Link, side: int, mask: int) -> None:
        here, other = link.sockets[side], link.sockets[1 - side]
        if mask & selectors.EVENT_WRITE and link.buffers[side]:
            sent = here.send(link.buffers[side])
            del link.buffers[side][:sent]
            if not link.buffers[side] and link.ends[1 - side]:
                here.shutdown(socket.SHUT_WR)  # pass the other side's end of stream on
        if mask & selectors.EVENT_READ and not link.ends[side]:
            try:
                data = here.recv(_CHUNK)
            except BlockingIOError:
                data = None
            if data == b"":
                link.ends[side] = True
                if not link.buffers[1 - side]:
                    other.shutdown(socket.SHUT_WR)
            elif data:
                link.buffers[1 - side].extend(data)
        if link.done():
            self._close(link)
        else:
            self._update(link)

    def _update(self, link: _Link) -> None:
        for side, sock in enumerate(link.sockets):
            wanted = link.events(side)
            current = self._registered.get(sock, 0)
            if wanted == current:
                continue
            if current == 0:
                self._selector.register(sock, wanted, (link, side))
            elif wanted == 0:
                self._selector.unregister(sock)
            else:
                self._selector.modify(sock, wanted, (link, side))
            if wanted:
                self._registered[sock] = wanted
            else:
                self._registered.pop(sock, None)

    def _close(self, link: _Link) -> None:
        if link.closed:
            return
        link.closed = True
        for sock in link.sockets:
            if self._registered.pop(sock, 0):
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(sock)
            sock.close()
