"""Zygotes, the gateway's side: one warm interpreter per environment forks its new workers.

A zygote (``algora/runtime/zygote.py``, which says what runs inside) has imported its
environment's packages once; a worker forked from it skips those imports, so its cold start is
a fork plus the model's own load. :class:`Zygotes` starts one lazily, on the first worker start
of an environment (the publish smoke test's, often), keyed by the environment's interpreter,
the network grant and the sandbox; it is stopped once it has had no worker for its idle period.
In the sandbox the zygote runs under bwrap (``algora.workers.sandbox.zygote_bwrap_command``)
and each worker isolates itself right after the fork.

The zygote is reached through a ``SOCK_SEQPACKET`` control socket (its fd 0). Each worker gets
a socket pair of its own for frames (the zygote receives the worker's end, and its log file,
with ``SCM_RIGHTS``) and is sent its argv and environment on it, never through the zygote. The
zygote answers with a pidfd of the worker, by which the gateway kills it, and later its exit
status. Only workers whose folders the zygote can show them are forked: the version's source
under the data directory's ``sources``, its socket folder under ``channels``; others start as
plain processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from algora.errors import WorkerDied
from algora.workers.backend import Frame
from algora.workers.runtime_files import install_runtime, zygote_command
from algora.workers.sandbox import normalize_status, zygote_bwrap_command
from algora.workers.spec import WorkerSpec
from algora.workers.streams import FramedWorker, Launch, open_log

__all__ = ["ZygoteWorker", "Zygotes"]

logger = logging.getLogger(__name__)

_PIPE_LIMIT = 1 << 20
_MSG_SIZE = 1 << 16
_DIR_MODE = 0o700
_EXIT_GRACE = 2.0
"""Seconds a worker that closed its socket has to exit by itself before it is killed."""
_GONE = -signal.SIGKILL
"""The exit status of a worker whose zygote ended before telling it."""

ZygoteKey = tuple[str, bool, bool, str]
"""(interpreter, network granted, sandboxed, data directory)."""


def _roots(data_dir: Path) -> list[Path]:
    """The folders a zygote shows its workers: sources, homes, socket folders."""
    return [data_dir / "sources", data_dir / "homes", data_dir / "channels"]


def _host_pid(pidfd: int) -> int | None:
    """The process id, as this process sees it, of the process behind ``pidfd``."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/self/fdinfo/{pidfd}").read_text().splitlines():
            if line.startswith("Pid:"):
                pid = int(line.split()[1])
                return pid if pid > 0 else None
    return None


class ZygoteWorker(FramedWorker):
    """A worker forked by a zygote, spoken to over its own socket pair."""

    def __init__(
        self,
        streams: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        pidfd: int,
        exited: asyncio.Future[int],
        *,
        sandboxed: bool,
        tmp_dir: Path | None,
        forked_in: float,
    ) -> None:
        super().__init__(*streams, tmp_dir)
        self._pidfd: int | None = pidfd
        self._pid = _host_pid(pidfd)
        self._exited = exited
        self._sandboxed = sandboxed
        self._forked_in = forked_in
        self._forked_at = time.perf_counter()
        self._loaded = False

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def returncode(self) -> int | None:
        if not self._exited.done():
            return None
        return self._status(self._exited.result())

    def _status(self, code: int) -> int:
        return normalize_status(code) if self._sandboxed else code

    async def read_frame(self) -> Frame:
        header, payload = await super().read_frame()
        if not self._loaded and header.get("type") == "ready":
            self._loaded = True
            load = float(header.get("load_seconds", 0.0))
            logger.info(
                "cold start of a forked worker: fork %.1f ms, model load %.1f ms "
                "(after %.1f ms of sandbox set-up)",
                self._forked_in * 1000,
                load * 1000,
                max(0.0, time.perf_counter() - self._forked_at - load) * 1000,
            )
        return header, payload

    def kill(self) -> None:
        if self._reader.at_eof() and not self._exited.done():
            # It closed its socket: it is exiting, and its status (out of memory, say) is on
            # its way up through its parents; they are killed only if it lingers.
            asyncio.get_running_loop().call_later(_EXIT_GRACE, self._kill_now)
            return
        self._kill_now()

    def _kill_now(self) -> None:
        if self._exited.done() or self._pidfd is None:
            return
        try:
            signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        except ProcessLookupError:
            return
        if not self._sandboxed and self._pid is not None:
            # It leads its own session: what the model started goes too. (In the sandbox, its
            # PID namespace dies with it.)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._pid, signal.SIGKILL)

    async def wait(self) -> int:
        code = await asyncio.shield(self._exited)
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        await self._release()
        return self._status(code)


def _settle(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], value: Any) -> None:
    """Resolve ``future`` (of ``loop``) from any thread; an exception value is raised in it."""

    def settle() -> None:
        if future.done():
            return
        if isinstance(value, BaseException):
            future.set_exception(value)
        else:
            future.set_result(value)

    with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits any more
        loop.call_soon_threadsafe(settle)


class _Zygote:
    """One running zygote: its process, its control socket, and what it owes the gateway.

    Not bound to an event loop (the publish smoke test runs in a loop of its own, serving in
    another, and both fork from the same zygote): a thread reads the control socket and settles
    each waiter's future in the waiter's own loop.
    """

    def __init__(self, process: subprocess.Popen[bytes], control: socket.socket) -> None:
        self.process = process
        self._control = control
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.ready = threading.Event()
        self._forks: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[int]]] = {}
        self._exits: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[int]]] = {}
        self._workers: dict[int, ZygoteWorker] = {}
        self.alive = True
        self.idle_timer: threading.Timer | None = None
        self.on_idle: Callable[[_Zygote], None] = lambda _: None
        threading.Thread(target=self._read, name="algora-zygote", daemon=True).start()

    @property
    def workers(self) -> int:
        with self._lock:
            return len(self._exits)

    def _read(self) -> None:
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self._control, _MSG_SIZE, 1)
            except OSError:
                data, fds = b"", []
            if not data:
                break
            self._on_message(json.loads(data), fds)
        self.close()
        self._control.close()
        code = self.process.wait()
        logger.info("a zygote exited with status %s", code)

    def _on_message(self, message: dict[str, Any], fds: list[int]) -> None:
        kind, ident = message.get("type"), int(message.get("id", 0))
        if kind == "ready":
            self.ready.set()
        with self._lock:
            fork = self._forks.pop(ident, None) if kind == "forked" else None
            exit_ = self._exits.pop(ident, None) if kind == "exited" else None
            if exit_ is not None:
                self._workers.pop(ident, None)
            idle = exit_ is not None and not self._exits
        if fork is not None and fds:
            _settle(*fork, fds.pop())
        for fd in fds:
            os.close(fd)
        if exit_ is not None:
            _settle(*exit_, int(message.get("status", _GONE)))
        if idle:
            self.on_idle(self)

    async def fork(
        self, request: dict[str, Any], worker_end: int, log_fd: int
    ) -> tuple[int, int, asyncio.Future[int]]:
        """Ask for a worker; return the zygote's id of it, its pidfd and its exit future."""
        loop = asyncio.get_running_loop()
        forked: asyncio.Future[int] = loop.create_future()
        exited: asyncio.Future[int] = loop.create_future()
        with self._lock:
            if not self.alive:
                raise WorkerDied("the zygote has exited")
            ident = next(self._ids)
            self._forks[ident] = (loop, forked)
            self._exits[ident] = (loop, exited)
        message = json.dumps({**request, "type": "fork", "id": ident}).encode()
        try:
            # A few hundred bytes on a socket that nothing else writes: it does not block.
            socket.send_fds(self._control, [message], [worker_end, log_fd])
            pidfd = await forked
        except BaseException:
            with self._lock:
                self._forks.pop(ident, None)
                self._exits.pop(ident, None)
            raise
        return ident, pidfd, exited

    def adopt(self, ident: int, worker: ZygoteWorker) -> None:
        with self._lock:
            if ident in self._exits:
                self._workers[ident] = worker

    def close(self) -> None:
        """Stop it: the zygote kills what it forked and exits when its control socket closes."""
        with self._lock:
            if not self.alive:
                return
            self.alive = False
            forks, exits, workers = self._forks, self._exits, list(self._workers.values())
            self._forks, self._exits, self._workers = {}, {}, {}
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        with contextlib.suppress(OSError):
            self._control.shutdown(socket.SHUT_RDWR)  # wakes the reading thread, which closes
        if not self.ready.is_set():  # stuck preloading (an import that hangs): it reads nothing
            with contextlib.suppress(OSError):
                self.process.kill()
        self.ready.set()
        for fork in forks.values():
            _settle(*fork, WorkerDied("the zygote exited"))
        for worker in workers:
            worker.kill()
        for exit_ in exits.values():
            _settle(*exit_, _GONE)


class Zygotes:
    """The zygotes of one gateway, by environment; see the module's docstring."""

    def __init__(self, idle_seconds: float = 600.0) -> None:
        self._idle_seconds = idle_seconds
        self._zygotes: dict[ZygoteKey, _Zygote] = {}
        self._lock = threading.Lock()

    @staticmethod
    def can_fork(spec: WorkerSpec, data_dir: Path) -> bool:
        """Whether a zygote can start ``spec``'s worker: a Python model in the data directory."""
        if spec.runtime != "python":
            return False
        sources, _, channels = (root.resolve() for root in _roots(data_dir))
        if spec.source_dir.resolve().parent != sources:
            return False
        folder = spec.gateway_folder
        return folder is None or folder.resolve().parent == channels

    async def start(self, spec: WorkerSpec, data_dir: Path, launch: Launch) -> ZygoteWorker:
        """Fork a worker of ``spec`` that runs the worker runtime with ``launch``'s arguments
        and environment."""
        sandboxed, home = launch.sandboxed, launch.home
        zygote = await self._zygote(spec, data_dir, sandboxed)
        gateway_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        request = {
            "source": str(spec.source_dir.resolve()),
            "home": str(home.resolve()),
            "channel": str(spec.gateway_folder.resolve()) if spec.gateway_folder else None,
            "network": spec.network,
            "tmp_size": spec.memory_bytes,
        }
        started = time.perf_counter()
        try:
            log_fd = open_log(spec.log_path)
            try:
                ident, pidfd, exited = await zygote.fork(request, worker_end.fileno(), log_fd)
            finally:
                os.close(log_fd)
                worker_end.close()
            streams = await asyncio.open_unix_connection(sock=gateway_end, limit=_PIPE_LIMIT)
        except BaseException:
            gateway_end.close()
            raise
        forked_in = time.perf_counter() - started
        worker = ZygoteWorker(
            streams,
            pidfd,
            exited,
            sandboxed=sandboxed,
            tmp_dir=launch.tmp_dir,
            forked_in=forked_in,
        )
        zygote.adopt(ident, worker)
        await worker.send_frame({"type": "start", "argv": launch.argv, "env": launch.env})
        return worker

    async def _zygote(self, spec: WorkerSpec, data_dir: Path, sandboxed: bool) -> _Zygote:
        key = (str(spec.python), spec.network, sandboxed, str(data_dir))
        with self._lock:
            zygote = self._zygotes.get(key)
        if zygote is None or not zygote.alive:
            # Two first starts at once may both launch one; the second replaces the first,
            # which then stops once idle.
            zygote = await _launch(spec, data_dir, sandboxed)
            zygote.on_idle = self._on_idle
            with self._lock:
                self._zygotes[key] = zygote
        if zygote.idle_timer is not None:
            zygote.idle_timer.cancel()
        ready = zygote.ready.is_set() or await asyncio.to_thread(
            zygote.ready.wait, spec.start_timeout
        )
        if not ready or not zygote.alive:
            zygote.close()
            raise WorkerDied(
                f"the environment's zygote did not start within {spec.start_timeout:g}s"
            )
        return zygote

    def close(self) -> None:
        """Stop every zygote (and what it still runs): the gateway is closing."""
        with self._lock:
            zygotes, self._zygotes = list(self._zygotes.values()), {}
        for zygote in zygotes:
            zygote.close()

    def _on_idle(self, zygote: _Zygote) -> None:
        timer = threading.Timer(self._idle_seconds, self._stop_if_idle, [zygote])
        timer.daemon = True
        zygote.idle_timer = timer
        timer.start()

    def _stop_if_idle(self, zygote: _Zygote) -> None:
        if zygote.workers == 0:
            zygote.close()


async def _launch(spec: WorkerSpec, data_dir: Path, sandboxed: bool) -> _Zygote:
    roots = _roots(data_dir)
    for root in roots:
        root.mkdir(mode=_DIR_MODE, exist_ok=True)
    argv = zygote_command(data_dir, spec.python, roots, sandboxed=sandboxed)
    if sandboxed:
        runtime_dir = install_runtime(data_dir)
        wrap = zygote_bwrap_command
        argv = await asyncio.to_thread(wrap, argv, spec, data_dir, runtime_dir, roots)
    path = os.pathsep.join((str(spec.python.parent), "/usr/local/bin", "/usr/bin", "/bin"))
    env = {"PATH": path, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": "/nonexistent"}
    gateway_end, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    log_fd = open_log(data_dir / "zygotes" / "zygotes.log")
    try:
        process = await asyncio.to_thread(
            subprocess.Popen,
            argv,
            stdin=zygote_end.fileno(),
            stdout=log_fd,
            stderr=log_fd,
            env=env,
            cwd="/",
            start_new_session=True,
        )
    except BaseException:
        gateway_end.close()
        raise
    finally:
        zygote_end.close()
        os.close(log_fd)
    return _Zygote(process, gateway_end)
