"""The default worker backend: one local subprocess per worker, frames over its stdin/stdout.

Where the spec asks for it and bwrap works, the worker runs in the sandbox that
``algora.workers.sandbox`` builds (with a private tmpfs ``/tmp``); otherwise it runs as a plain
subprocess whose ``TMPDIR`` is a directory of its own under its HOME, removed when it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import signal
import tempfile
from dataclasses import replace
from pathlib import Path

from algora.errors import WorkerDied
from algora.workers.channel import SANDBOX_FOLDER, SOCKET_NAME
from algora.workers.runtime_files import (
    install_node_runtime,
    install_runtime,
    node_command,
    runtime_command,
)
from algora.workers.sandbox import bwrap_command, limit_args, normalize_status, sandbox_status
from algora.workers.spec import WorkerSpec
from algora.workers.streams import FramedWorker, Launch, open_log
from algora.workers.zygote import Zygotes, ZygoteWorker

__all__ = ["LocalBackend", "LocalWorker", "worker_environment"]

logger = logging.getLogger(__name__)

_LOG_MODE = 0o600
_HOME_MODE = 0o700
_SYSTEM_PATH = ("/usr/local/bin", "/usr/bin", "/bin")
_PIPE_LIMIT = 1 << 20
_BOOT_ARGS = 4
"""``python -I -c BOOT``: what precedes the runtime's own arguments in its argv."""


def worker_environment(spec: WorkerSpec, home: Path) -> dict[str, str]:
    """The whole environment of a worker. Nothing of the gateway's own environment (which may
    hold keys and database URLs) is passed through."""
    path = os.pathsep.join((str(spec.python.parent), *_SYSTEM_PATH))
    env = {"PATH": path, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": str(home)}
    if spec.node_modules is not None:
        env["NODE_PATH"] = str(spec.node_modules)
    env.update(spec.env)
    return env


def _private_home(data_dir: Path, spec: WorkerSpec) -> Path:
    key = hashlib.sha256(str(spec.source_dir.resolve()).encode()).hexdigest()[:24]
    home = data_dir / "homes" / key
    home.parent.mkdir(exist_ok=True, mode=_HOME_MODE)
    home.mkdir(exist_ok=True, mode=_HOME_MODE)
    return home


class LocalWorker(FramedWorker):
    """A worker subprocess. Its stderr goes straight to the spec's log file (no reader task)."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        *,
        sandboxed: bool = False,
        tmp_dir: Path | None = None,
    ) -> None:
        stdin, stdout = process.stdin, process.stdout
        if stdin is None or stdout is None:
            raise RuntimeError("worker process started without pipes")
        super().__init__(stdout, stdin, tmp_dir)
        self._process = process
        self._sandboxed = sandboxed

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        code = self._process.returncode
        return normalize_status(code) if code is not None and self._sandboxed else code

    def kill(self) -> None:
        if self._process.returncode is not None:
            return
        # Raw signals only: Process.kill() polls (reaps) the child first, which races with
        # asyncio's child watcher and loses the exit status. The worker leads its own session,
        # so killing its process group takes down whatever the model started too.
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self._process.pid, signal.SIGKILL)

    async def wait(self) -> int:
        code = await self._process.wait()
        await self._release()
        return normalize_status(code) if self._sandboxed else code


class LocalBackend:
    """Starts workers as local subprocesses of the gateway, or forked by their environment's
    zygote (``algora.workers.zygote``) where one can start them."""

    def __init__(self, *, zygotes: Zygotes | None = None) -> None:
        self._zygotes = zygotes

    async def start(self, spec: WorkerSpec, data_dir: Path) -> LocalWorker | ZygoteWorker:
        node = spec.runtime == "node"
        if node:  # limits are set by its launcher (runtime_files.node_command says which)
            argv = node_command(
                data_dir, spec.python, spec.source_dir, spec.entrypoint, spec.memory_bytes
            )
            if spec.cpu_seconds is not None:  # a watchdog thread of the worker's enforces it
                argv += ["--cpu-limit", repr(float(spec.cpu_seconds))]
        else:
            argv = runtime_command(data_dir, spec.python, spec.source_dir, spec.entrypoint)
            argv += limit_args(spec) + ([] if spec.check_inputs else ["--no-input-check"])
        home = _private_home(data_dir, spec)
        env = worker_environment(spec, home)
        sandboxed = spec.sandbox and sandbox_status().available
        if spec.gateway_folder is not None:
            folder = SANDBOX_FOLDER if sandboxed else str(spec.gateway_folder)
            argv += ["--gateway-socket", f"{folder}/{SOCKET_NAME}"]
        tmp_dir: Path | None = None
        if not sandboxed:
            tmp_root = home / ".tmp"
            tmp_root.mkdir(exist_ok=True, mode=_HOME_MODE)
            tmp_dir = Path(tempfile.mkdtemp(prefix="worker-", dir=tmp_root))
            env["TMPDIR"] = str(tmp_dir)
        launch = Launch(argv, env, home, sandboxed, tmp_dir)
        try:
            if self._zygotes is not None and not node and self._zygotes.can_fork(spec, data_dir):
                try:
                    runtime_args = replace(launch, argv=argv[_BOOT_ARGS:])
                    return await self._zygotes.start(spec, data_dir, runtime_args)
                except WorkerDied as exc:  # the zygote itself failed: start the worker plainly
                    logger.warning("no zygote for %s (%s): a plain worker", spec.python, exc)
            return await self._spawn(spec, data_dir, launch)
        except BaseException:
            if tmp_dir is not None:
                shutil.rmtree(tmp_dir, ignore_errors=True)
            raise

    async def _spawn(self, spec: WorkerSpec, data_dir: Path, launch: Launch) -> LocalWorker:
        argv = launch.argv
        if launch.sandboxed:
            node = spec.runtime == "node"
            runtime_dir = install_node_runtime(data_dir) if node else install_runtime(data_dir)
            wrap = bwrap_command
            argv = await asyncio.to_thread(wrap, argv, spec, data_dir, launch.home, runtime_dir)
        log_fd = open_log(spec.log_path)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log_fd,
                env=launch.env,
                cwd=str(spec.source_dir),
                start_new_session=True,
                limit=_PIPE_LIMIT,
            )
        finally:
            os.close(log_fd)
        return LocalWorker(process, sandboxed=launch.sandboxed, tmp_dir=launch.tmp_dir)
