"""The control socket between the processes of one ``algora serve --workers N``.

Each process caches callers and resolved versions. A change made through one of them (a key
revoked, a grant, a publish, an alias moved) must be refused or seen by all of them before its
request is answered, not a tick of the registry's change feed later. So the primary serves a
private Unix socket, and each front holds two connections to it, one line per message:

- ``down ID``: the primary tells the front a message; the front applies it and answers
  ``ok``. When this connection ends, the primary is gone, and the front stops.
- ``up ID``: the front says ``ready`` once it serves, and then a message of its own; the
  primary applies it, tells every other front, and only then answers ``ok``.

The messages: ``forget`` (drop the cached callers and resolutions: a change was made) and
``warm VERSION_ID`` (a version was published: start its workers here too, in the background).
Telling is blocking and serialized (changes are rare; calls never wait for it); a front that
does not answer within :data:`ANSWER_SECONDS` is told no more, and the registry's change feed
still reaches it within a second.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["ANSWER_SECONDS", "Hub", "Link"]

logger = logging.getLogger(__name__)

ANSWER_SECONDS = 5.0
"""How long a process waits for another to answer on the control socket."""


def _read_line(sock: socket.socket, buffer: bytearray) -> bytes | None:
    """The next line (without its newline), or None at the end of the connection."""
    while b"\n" not in buffer:
        chunk = sock.recv(4096)
        if not chunk:
            return None
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line


Apply = Callable[[str], None]
"""What a process does with a message another process sent (``forget``, ``warm 12``)."""


def _apply_safely(apply: Apply, message: str) -> None:
    try:
        apply(message)
    except Exception:  # one message gone wrong must not end the control connection
        logger.exception("could not apply %r from another process", message)


class _Peer:
    """One front's ``down`` connection, as the primary holds it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def tell(self, message: str) -> bool:
        try:
            self.sock.sendall(message.encode() + b"\n")
            return _read_line(self.sock, self.buffer) == b"ok"
        except OSError:
            return False


class Hub:
    """The primary's end: fronts connect here; changes go to every process but their maker."""

    def __init__(self, path: Path, apply: Apply) -> None:
        self.path = path
        self._apply = apply
        self._downs: dict[str, _Peer] = {}
        self._ready: set[str] = set()
        self._telling = threading.Lock()  # one broadcast at a time
        self._changed = threading.Condition()  # guards the tables
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(64)
        threading.Thread(target=self._accept, name="algora-hub", daemon=True).start()

    def ready(self) -> int:
        """How many fronts serve and listen (both of their connections are here)."""
        with self._changed:
            return len(self._ready & self._downs.keys())

    def wait_ready(self, count: int, timeout: float, alive: Callable[[], bool]) -> bool:
        """Wait until ``count`` fronts serve; False when ``alive`` turns false or time is up."""
        deadline = time.monotonic() + timeout
        with self._changed:
            # In slices: a front that dies before it connects notifies nobody.
            while self._count() < count and alive() and time.monotonic() < deadline:
                self._changed.wait(min(0.2, max(0.0, deadline - time.monotonic())))
            return self._count() >= count

    def _count(self) -> int:
        return len(self._ready & self._downs.keys())

    def tell(self, message: str, *, but: str | None = None) -> None:
        """Have every front (except ``but``) apply ``message``; return once they have."""
        with self._telling:
            with self._changed:
                peers = [(f, p) for f, p in self._downs.items() if f != but]
            for front, peer in peers:
                if not peer.tell(message):
                    logger.warning("front %s did not answer on the control socket", front)
                    with self._changed:
                        self._downs.pop(front, None)
                    peer.sock.close()

    def close(self) -> None:
        self._server.close()
        with self._changed:
            for peer in self._downs.values():
                peer.sock.close()
            self._downs.clear()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._server.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._greet, args=(sock,), daemon=True).start()

    def _greet(self, sock: socket.socket) -> None:
        buffer = bytearray()
        try:
            sock.settimeout(ANSWER_SECONDS)
            kind, _, front = (_read_line(sock, buffer) or b"").decode().partition(" ")
        except (OSError, UnicodeDecodeError):
            sock.close()
            return
        if kind == "down":
            with self._changed:
                replaced = self._downs.get(front)  # a front started again in place of one
                self._downs[front] = _Peer(sock)
                self._changed.notify_all()
            if replaced is not None:
                replaced.sock.close()
            return
        if kind != "up":
            sock.close()
            return
        sock.settimeout(None)
        with sock:
            self._serve_up(sock, buffer, front)
        with self._changed:
            self._ready.discard(front)
            self._changed.notify_all()

    def _serve_up(self, sock: socket.socket, buffer: bytearray, front: str) -> None:
        while True:
            try:
                line = _read_line(sock, buffer)
            except OSError:
                return
            if line is None:
                return
            if line == b"ready":
                with self._changed:
                    self._ready.add(front)
                    self._changed.notify_all()
            else:
                message = line.decode("ascii", "replace")
                _apply_safely(self._apply, message)
                self.tell(message, but=front)
                try:
                    sock.sendall(b"ok\n")
                except OSError:
                    return


class Link:
    """A front's end: its changes go up before its request is answered; others' come down."""

    def __init__(self, path: Path, front: str, apply: Apply) -> None:
        self._apply = apply
        self._up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._up.connect(str(path))
        self._up.sendall(f"up {front}\n".encode())
        self._up_buffer = bytearray()
        self._up_lock = threading.Lock()
        self._down = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._down.connect(str(path))
        self._down.sendall(f"down {front}\n".encode())

    def listen(self, primary_gone: Callable[[], None]) -> None:
        """Answer the primary's messages on a thread; call ``primary_gone`` when it is gone."""

        def serve() -> None:
            buffer = bytearray()
            while True:
                try:
                    line = _read_line(self._down, buffer)
                    if line is None:
                        break
                    _apply_safely(self._apply, line.decode("ascii", "replace"))
                    self._down.sendall(b"ok\n")
                except OSError:
                    break
            primary_gone()

        threading.Thread(target=serve, name="algora-link", daemon=True).start()

    def ready(self) -> None:
        with self._up_lock:
            self._up.sendall(b"ready\n")

    def tell(self, message: str) -> None:
        """Have every other process apply ``message``; return once they have."""
        with self._up_lock:
            try:
                self._up.settimeout(ANSWER_SECONDS * 2)
                self._up.sendall(message.encode() + b"\n")
                if _read_line(self._up, self._up_buffer) != b"ok":
                    raise OSError("no answer")
            except OSError:
                logger.warning("the primary did not confirm a change: others see it within 1 s")

    def close(self) -> None:
        self._up.close()
        self._down.close()
