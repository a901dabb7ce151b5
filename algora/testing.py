"""The harness our tests and users' tests share: a real server on a free port, model folders."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from algora.sdk.client import Client

__all__ = ["RunningServer", "free_port", "stop_process", "write_model"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_model(
    folder: Path,
    name: str,
    code: str,
    *,
    entrypoint: str = "model:apply",
    requirements: str = "",
    example: str | None = None,
    extra_manifest: str = "",
    files: dict[str, str] | None = None,
) -> Path:
    """Write a model folder: ``model.py`` with ``code`` and an ``algora.toml``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.py").write_text(code, encoding="utf-8")
    (folder / "requirements.txt").write_text(requirements, encoding="utf-8")
    manifest = f'[model]\nname = "{name}"\nentrypoint = "{entrypoint}"\n'
    if example is not None:
        manifest += f"\n[example]\n{example}\n"
    (folder / "algora.toml").write_text(manifest + extra_manifest, encoding="utf-8")
    for relative, text in (files or {}).items():
        (folder / relative).write_text(text, encoding="utf-8")
    return folder


def stop_process(process: subprocess.Popen[bytes] | None, *, grace: float = 10) -> None:
    """SIGTERM a process we started, SIGKILL it after ``grace`` seconds; wait for it."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class RunningServer:
    """``algora serve`` as a real process on a free loopback port; stopped by its PID."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        start_timeout: float = 60.0,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = env or {}
        self._args = args
        self._start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"server-{self.port}.log"

    @property
    def key(self) -> str:
        return (self.data_dir / "admin.key").read_text(encoding="utf-8").strip()

    def client(self, key: str | None = None) -> Client:
        return Client(self.url, key or self.key)

    def start(self) -> RunningServer:
        command = [
            sys.executable, "-m", "algora", "serve",
            "--data-dir", str(self.data_dir), "--port", str(self.port), *self._args,
        ]  # fmt: skip
        env = {**os.environ, **self._env}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early: {self.log()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready in {self._start_timeout}s: {self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-5000:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        stop_process(self.process, grace=20)

    def __enter__(self) -> RunningServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def call(self, ref: str, data: Any) -> Any:
        with self.client() as client:
            return client.model(ref).call(data)
