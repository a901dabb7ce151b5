"""Raw HTTP over a socket for the hostile-request tests: bodies that are huge, slow or never
finished, which no HTTP client library sends on purpose."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float
    """From the end of the request's headers to the answer's status line."""


@dataclass
class Flood:
    """A body sent as fast as the server takes it, from a thread, until the socket refuses."""

    sock: socket.socket
    total: int
    sent: int = 0
    stopped: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        chunk = b"[" * (256 * 1024)
        try:
            while self.sent < self.total and not self.stopped.is_set():
                self.sent += self.sock.send(chunk[: self.total - self.sent])
        except OSError:
            pass  # the server closed the connection: the body's end is never read


def request_head(port: int, method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def answer(sock: socket.socket, started: float) -> Answer:
    response = http.client.HTTPResponse(sock)
    response.begin()
    seconds = time.monotonic() - started
    body = response.read()
    return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body, seconds)


def send_flood(
    port: int, method: str, path: str, headers: dict[str, str], size: int
) -> tuple[Answer, Flood]:
    """Declare a ``size``-byte body, send it from a thread, and read the answer meanwhile."""
    sock = connect(port)
    sock.sendall(request_head(port, method, path, {**headers, "Content-Length": str(size)}))
    started = time.monotonic()
    flood = Flood(sock, size)
    thread = threading.Thread(target=flood.run, daemon=True)
    thread.start()
    try:
        got = answer(sock, started)
    finally:
        flood.stopped.set()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes the thread if it is blocked in send
        sock.close()
        thread.join(timeout=30)
    return got, flood


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes the connection within ``within`` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except (TimeoutError, OSError):
        return False
