"""``algora serve --workers N``: N gateway processes on one port, one per core.

One gateway process spends most of a call's CPU in Python (parsing, authenticating, auditing,
encoding), so it uses one core however many the machine has. Here the process that ``algora
serve`` starts (the primary) opens the platform, starts N-1 *fronts*, and waits until each
serves; then it serves too. Every process is a whole gateway on the same registry and data
folder, as several gateways behind a load balancer are (see docs/operations.md), and each binds
the port with ``SO_REUSEPORT``, so the kernel spreads connections over them:

- caches: a change made through any process reaches every other before its request is
  answered (:mod:`algora.multiproc.siblings`); a new version's workers start in each;
- rate limits: kept in the registry (``rate_limit_backend = database``) unless set otherwise,
  so a key gets its limit once, not once per process;
- audit: each process has its own writer; all of them extend the one hash chain;
- gRPC and the example models are the primary's alone;
- shutdown: a SIGTERM to the primary reaches the fronts at once; each stops taking
  connections, finishes its calls in flight, and exits; a front whose primary dies stops too,
  and a front that dies while the server serves is started again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from algora.app import configure_logging, create_app
from algora.errors import Unavailable
from algora.multiproc.siblings import Apply, Hub, Link
from algora.platform import Platform
from algora.settings import Settings

__all__ = ["Fronts", "PrimaryServer", "front_main", "listening_socket", "server_config"]

logger = logging.getLogger(__name__)

START_SECONDS = 120.0
"""How long the primary waits for its fronts to open the platform and serve."""
_STOP_MARGIN_SECONDS = 30.0
"""How much longer than the longest call the primary waits for its fronts to drain."""
_RESTART_PAUSE_SECONDS = 1.0


def server_config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    # proxy_headers=False: uvicorn would otherwise let any local process rewrite the peer
    # address from X-Forwarded-For; the audit log trusts that header only from
    # ALGORA_TRUSTED_PROXIES (see AuditLog.origin).
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
    )


def listening_socket(host: str, port: int, *, first: bool = False) -> socket.socket:
    """A TCP socket listening on ``host:port`` that other processes of this user may bind too.

    The ``first`` (the primary's) fails when anything listens there already, even another
    ``algora serve --workers`` of this user, which ``SO_REUSEPORT`` alone would let it join.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if first:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))  # without SO_REUSEPORT: EADDRINUSE if the port is taken
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.set_inheritable(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _applier(platform: Platform) -> Apply:
    """What this process does with another's message (see :mod:`algora.multiproc.siblings`)."""

    def apply(message: str) -> None:
        kind, _, argument = message.partition(" ")
        if kind == "forget":
            platform.forget_cached()
        elif kind == "warm" and argument.isdigit():
            platform.calls.warm(int(argument))
        else:
            logger.warning("unknown message from another process: %r", message)

    return apply


def _tell_siblings(platform: Platform, tell: Callable[[str], None]) -> None:
    """Tell the other processes what this one changed, before its request is answered."""
    platform.on_changed.append(lambda: tell("forget"))
    if platform.settings.warm_on_publish:  # each process serves the new version without a wait
        platform.publisher.on_change(lambda version_id: tell(f"warm {version_id}"))


class Fronts:
    """The primary's N-1 front processes and the control socket they listen on."""

    def __init__(self, platform: Platform, overrides: dict[str, Any], count: int) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="algora-serve-"))  # private (0700)
        self._drain_seconds = platform.settings.max_call_timeout + _STOP_MARGIN_SECONDS
        self.hub = Hub(self._folder / "control", _applier(platform))
        _tell_siblings(platform, self.hub.tell)
        self._config = {"overrides": {**overrides, "grpc_port": None}, "hub": str(self.hub.path)}
        self._lock = threading.Lock()  # the processes' table, and stopping against restarts
        self._serving = False
        self._stopping = False
        self._processes = [self._spawn(number) for number in range(1, count + 1)]
        for number in range(1, count + 1):
            threading.Thread(target=self._watch, args=(number,), daemon=True).start()

    def _spawn(self, number: int) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "algora.multiproc", "front"], stdin=subprocess.PIPE
        )
        assert process.stdin is not None  # stdin=PIPE
        # On stdin, not argv: no other local user's `ps` sees the settings.
        process.stdin.write(json.dumps({**self._config, "front": str(number)}).encode() + b"\n")
        process.stdin.close()
        return process

    def _watch(self, number: int) -> None:
        """Start front ``number`` again whenever it exits while the server serves (its lease
        lets it start beside the others without failing their builds)."""
        while True:
            process = self._processes[number - 1]
            code = process.wait()
            time.sleep(_RESTART_PAUSE_SECONDS)  # not in a tight loop if it dies at once
            with self._lock:
                if not self._serving or self._stopping:
                    return
                logger.error(
                    "front process %d exited (status %d): starting another", process.pid, code
                )
                self._processes[number - 1] = self._spawn(number)

    def wait_ready(self) -> None:
        """Return once every front serves; raise Unavailable when one cannot."""
        count = len(self._processes)
        alive = lambda: all(p.poll() is None for p in self._processes)  # noqa: E731
        if not self.hub.wait_ready(count, START_SECONDS, alive):
            self.stop()
            raise Unavailable(
                f"{count - self.hub.ready()} of {count} front process(es) did not start: "
                "their errors are in the log above; try again with fewer --workers"
            )
        with self._lock:
            self._serving = True

    def terminate(self) -> None:
        """Tell every front to stop taking connections and finish its calls (SIGTERM)."""
        with self._lock:
            self._stopping = True
            processes = list(self._processes)
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """Terminate the fronts, wait until they have exited, and remove the control socket."""
        self.terminate()
        deadline = time.monotonic() + self._drain_seconds
        for process in list(self._processes):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("front process %d did not stop: killing it", process.pid)
                process.kill()
                process.wait()
        self.hub.close()
        shutil.rmtree(self._folder, ignore_errors=True)


class PrimaryServer(uvicorn.Server):
    """The primary's server: its shutdown starts the fronts' and ends after theirs."""

    def __init__(self, config: uvicorn.Config, fronts: Fronts) -> None:
        super().__init__(config)
        self._fronts = fronts

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._fronts.terminate()  # they drain beside this one
        await super().shutdown(sockets=sockets)
        await asyncio.to_thread(self._fronts.stop)


def front_main() -> int:
    """A front process: the settings and the control socket arrive as one JSON line on stdin."""
    config = json.loads(sys.stdin.buffer.readline())
    settings = Settings(**config["overrides"])
    configure_logging(settings.log_level, settings.log_format)
    platform = Platform.open(settings)
    link = Link(Path(config["hub"]), config["front"], _applier(platform))
    _tell_siblings(platform, link.tell)
    server = uvicorn.Server(server_config(create_app(settings, platform), settings))

    def primary_gone() -> None:
        server.should_exit = True

    def say_ready() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            link.ready()

    link.listen(primary_gone)
    threading.Thread(target=say_ready, name="algora-ready", daemon=True).start()
    sock = listening_socket(settings.host, settings.port)
    try:
        server.run(sockets=[sock])
    finally:
        link.close()
        platform.publisher.shutdown()
        platform.builds.shutdown()
        platform.engine.dispose()
    return 0
