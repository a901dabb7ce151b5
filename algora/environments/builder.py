"""Locked, cached environments built with uv: the one module that runs uv.

An environment lives at ``root/<hash>`` where the hash covers the interpreter's version and
the canonical lock (:func:`~algora.environments.spec.environment_hash`). It is built in a
temporary folder next to its final place, marked complete by a file written last, and renamed
into place atomically; a per-hash file lock makes concurrent builds of one hash wait for each
other, so the second one reuses the first one's work. uv runs with a minimal environment,
``--no-config`` and the platform's index only: a model never chooses where its packages come
from, and nothing passes through a shell.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import fcntl
import json
import logging
import os
import select
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import uv

from algora.environments.network import INDEX_ACCESS
from algora.environments.spec import canonical_lock, environment_hash, interpreter_version
from algora.errors import BuildFailed

__all__ = ["Environment", "EnvironmentBuilder", "Log"]

logger = logging.getLogger(__name__)

Log = Callable[[str], None]
"""Receives one line of build output at a time, as it is produced."""

MARKER = "algora-environment.json"
LOCK_FILE = "algora-lock.txt"
_DIR_MODE = 0o700
_FILE_MODE = 0o600
_TAIL_LINES = 40
_DRAIN_GRACE = 2.0
"""Seconds output is still read after the command exited (see ``_drain``)."""
_LOG_LINES = 2000
_REASON_CHARS = 2000
# What uv needs from the gateway's own process environment to reach the index (proxies,
# certificates) and find the interpreter; nothing else is inherited, UV_* and PIP_* included.
_PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", *INDEX_ACCESS)


@dataclass(frozen=True)
class Environment:
    """A built environment: its hash, folder, interpreter, and whether it already existed."""

    hash: str
    path: Path
    python: Path
    reused: bool


class EnvironmentBuilder:
    """Locks requirements and builds (or reuses) environments under ``root``."""

    def __init__(
        self,
        root: Path,
        python: str,
        index_url: str,
        uv_cache_dir: Path | None = None,
        timeout: float = 1800,
    ) -> None:
        self.root = Path(root)
        self.python = python
        self.index_url = index_url
        self.uv_cache_dir = uv_cache_dir
        self.timeout = timeout

    # ---------------------------------------------------------------------------------------
    # locking

    def lock(self, requirements: list[str], log: Log, *, only_binary: bool = False) -> str:
        """Resolve ``requirements`` into a lock with pinned versions and hashes.

        Requirements must already have passed
        :func:`~algora.environments.requirements.parse_requirements`. An empty list gives an
        empty lock. With ``only_binary`` only wheels are considered, never a source
        distribution. Raises :class:`BuildFailed` with uv's reason when resolution fails.
        """
        if not requirements:
            return ""
        with tempfile.TemporaryDirectory(prefix="algora-lock-") as work:
            folder = Path(work)
            (folder / "requirements.in").write_text("\n".join(requirements) + "\n")
            output = folder / "requirements.txt"
            argv = [
                *self._uv("pip", "compile"),
                "requirements.in",
                "--generate-hashes",
                "--no-header",
                "--index-url",
                self.index_url,
                "--python",
                self.python,
                *_binary_only(only_binary),
            ]
            log(f"Locking {len(requirements)} requirement(s) with uv")
            with output.open("w") as lock_out:
                code, lines = _run(argv, folder, self._uv_env(), log, self.timeout, lock_out)
            if code != 0:
                raise _failure("could not lock the requirements", lines)
            return output.read_text()

    # ---------------------------------------------------------------------------------------
    # building

    def ensure(self, lock: str, log: Log, *, only_binary: bool = False) -> Environment:
        """The environment for ``lock``: reused when already built, else built now.

        With ``only_binary`` the install refuses source distributions (nothing is built).
        """
        version = interpreter_version(self.python)
        env_hash = environment_hash(version, lock)
        final = self.root / env_hash
        if (final / MARKER).is_file():
            log(f"Reusing environment {env_hash[:12]}")
            return self._environment(env_hash, reused=True)
        self._make_dir(self.root)
        with self._hash_lock(env_hash, log):
            if (final / MARKER).is_file():
                log(f"Reusing environment {env_hash[:12]} (built concurrently)")
                return self._environment(env_hash, reused=True)
            if final.exists() or final.is_symlink():
                log(f"Removing incomplete environment {env_hash[:12]}")
                _remove(final)
            log(f"Building environment {env_hash[:12]} (Python {version})")
            staging = Path(tempfile.mkdtemp(prefix=f".{env_hash[:12]}-", dir=self.root))
            try:
                self._build(staging, lock, log, only_binary=only_binary)
                (staging / LOCK_FILE).write_text(lock)
                marker = {"hash": env_hash, "python_version": version, "built_at": time.time()}
                # The marker is written last: its presence means the environment is complete.
                (staging / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
                for name in (LOCK_FILE, MARKER):
                    (staging / name).chmod(_FILE_MODE)
                _private(staging)
                staging.chmod(_DIR_MODE)
                staging.rename(final)
            except BaseException:
                _remove(staging)
                raise
            log(f"Environment {env_hash[:12]} ready")
            return self._environment(env_hash, reused=False)

    def _build(self, staging: Path, lock: str, log: Log, *, only_binary: bool = False) -> None:
        env = self._uv_env()
        venv = [
            *self._uv("venv"),
            str(staging),
            "--python",
            self.python,
            "--relocatable",  # scripts keep working after the rename into place
            "--no-project",
        ]
        code, lines = _run(venv, staging, env, log, self.timeout)
        if code != 0:
            raise _failure("could not create the virtual environment", lines)
        if not canonical_lock(lock):
            return  # nothing to install
        lock_path = staging / LOCK_FILE
        lock_path.write_text(lock)
        sync = [
            *self._uv("pip", "sync"),
            str(lock_path),
            "--python",
            str(staging / "bin" / "python"),
            "--require-hashes",
            "--index-url",
            self.index_url,
            *_binary_only(only_binary),
        ]
        code, lines = _run(sync, staging, env, log, self.timeout)
        if code != 0:
            raise _failure("could not install the locked packages", lines)

    def _environment(self, env_hash: str, *, reused: bool) -> Environment:
        path = self.root / env_hash
        return Environment(hash=env_hash, path=path, python=path / "bin" / "python", reused=reused)

    @contextlib.contextmanager
    def _hash_lock(self, env_hash: str, log: Log) -> Iterator[None]:
        locks = self.root / ".locks"
        self._make_dir(locks)
        fd = os.open(locks / f"{env_hash}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            deadline = time.monotonic() + self.timeout
            waiting = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not waiting:
                        log(f"Waiting for another build of environment {env_hash[:12]}")
                        waiting = True
                    if time.monotonic() > deadline:
                        raise BuildFailed(
                            f"timed out after {self.timeout:g}s waiting for another build of "
                            f"environment {env_hash[:12]}"
                        ) from None
                    time.sleep(0.2)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _make_dir(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
        path.chmod(_DIR_MODE)

    # ---------------------------------------------------------------------------------------
    # build commands

    def run_in_environment(
        self,
        env: Environment,
        argv: list[str],
        cwd: Path,
        log: Log,
        timeout: float | None = None,
        wrap: Callable[[list[str]], list[str]] | None = None,
    ) -> None:
        """Run a publish-time build command (``["python", "train.py"]``) inside ``env``.

        ``wrap`` turns the command line into a sandboxed one (the caller owns the sandbox).

        ``python`` (and ``python3``) mean the environment's interpreter; other commands are
        looked up on a ``PATH`` that starts with the environment's ``bin``. The command gets
        a minimal environment (``HOME`` is ``cwd``). Raises :class:`BuildFailed` with the last
        lines of output when it exits non-zero or runs past ``timeout`` seconds.
        """
        if not argv:
            raise BuildFailed("the build command is empty")
        command = list(argv)
        if command[0] in ("python", "python3"):
            command[0] = str(env.python)
        bin_dir = env.path / "bin"
        child_env = {
            "PATH": f"{bin_dir}{os.pathsep}{os.defpath}",
            "HOME": str(cwd),
            "LANG": "C.UTF-8",
            "VIRTUAL_ENV": str(env.path),
            "PYTHONUNBUFFERED": "1",
        }
        limit = self.timeout if timeout is None else timeout
        log(f"Running build command: {' '.join(argv)}")
        if wrap is not None:
            command = wrap(command)
        code, lines = _run(command, Path(cwd), child_env, log, limit)
        if code != 0:
            raise _failure(f"build command {argv!r} exited with status {code}", lines, tail=True)

    # ---------------------------------------------------------------------------------------
    # uv

    def _uv(self, *subcommand: str) -> list[str]:
        argv = [uv.find_uv_bin(), *subcommand, "--no-config", "--no-python-downloads"]
        if self.uv_cache_dir is not None:
            argv += ["--cache-dir", str(self.uv_cache_dir)]
        return argv

    def _uv_env(self) -> dict[str, str]:
        env = {name: os.environ[name] for name in _PASSTHROUGH if name in os.environ}
        env.setdefault("PATH", os.defpath)
        env.update({"NO_COLOR": "1", "UV_NO_PROGRESS": "1"})
        return env


def _run(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    log: Log,
    timeout: float,
    stdout: IO[str] | None = None,
) -> tuple[int, list[str]]:
    """Run ``argv``, passing each output line to ``log`` as it comes; return (code, lines).

    With ``stdout`` given, standard output goes there and standard error is streamed;
    otherwise both are streamed. The whole process group is killed after ``timeout``.
    """
    logger.debug("running %s in %s", argv, cwd)
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else subprocess.PIPE,
            stderr=subprocess.PIPE if stdout is not None else subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            start_new_session=True,
            umask=0o077,  # what uv and build commands write is the owner's only
        )
    except OSError as exc:
        raise BuildFailed(f"cannot run {argv[0]!r}: {exc.strerror or exc}") from exc
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, kill)
    timer.daemon = True
    timer.start()
    lines: collections.deque[str] = collections.deque(maxlen=_LOG_LINES)
    stream = proc.stderr if stdout is not None else proc.stdout

    def emit(raw: str) -> None:
        line = raw.rstrip("\r\n")
        lines.append(line)
        log(line)

    try:
        if stream is not None:
            _drain(stream, proc, emit)
        code = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            kill()
            proc.wait()
        if stream is not None:
            stream.close()
    if timed_out.is_set():
        raise BuildFailed(
            f"{Path(argv[0]).name} timed out after {timeout:g}s",
            details={"log": "\n".join(lines)},
        )
    return code, list(lines)


def _drain(stream: IO[str], proc: subprocess.Popen[str], emit: Callable[[str], None]) -> None:
    """Pass output lines to ``emit`` until the process has exited and its output is drained.

    Reading to end-of-file is not enough: a grandchild that left the process group (``setsid``)
    may hold the pipe open forever. Once the process is gone, output is read for a short grace
    period only.
    """
    fd = stream.fileno()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    exited_at: float | None = None
    while True:
        if exited_at is None and proc.poll() is not None:
            exited_at = time.monotonic()
        if exited_at is not None and time.monotonic() - exited_at > _DRAIN_GRACE:
            break
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        pending += decoder.decode(chunk)
        *complete, pending = pending.split("\n")
        for line in complete:
            emit(line)
    pending += decoder.decode(b"", final=True)
    if pending:
        emit(pending)


def _binary_only(only_binary: bool) -> list[str]:
    """uv's options that refuse source distributions, when ``only_binary``."""
    return ["--only-binary", ":all:"] if only_binary else []


def _failure(what: str, lines: list[str], *, tail: bool = False) -> BuildFailed:
    """A BuildFailed whose message carries the tool's own reason, trimmed."""
    reason_lines = lines[-_TAIL_LINES:]
    if not tail:
        for index, line in enumerate(lines):
            if line.lstrip().startswith(("error:", "\u00d7")):  # uv's fancy-mode marker
                reason_lines = lines[index : index + _TAIL_LINES]
                break
    reason = "\n".join(line for line in reason_lines if line.strip()).strip()
    if len(reason) > _REASON_CHARS:
        reason = reason[:_REASON_CHARS] + " ..."
    message = f"{what}: {reason}" if reason else what
    return BuildFailed(message, details={"log": "\n".join(lines)})


def _private(root: Path) -> None:
    """Take every permission away from group and others below ``root`` (not from links)."""
    for folder, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(folder) / name
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode) and mode & 0o077:
                path.chmod(stat.S_IMODE(mode) & ~0o077)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)
