"""Frames over a worker's pair of streams: what every local worker handle shares."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from algora.errors import WorkerDied
from algora.runtime.frames import PREFIX, FrameError, decode_header, decode_prefix, encode_frame
from algora.workers.backend import Frame

__all__ = ["FramedWorker", "Launch", "open_log"]

_DIR_MODE = 0o700
_LOG_MODE = 0o600


def open_log(path: Path) -> int:
    """Open (create) a worker's log file for appending, private to its owner."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, _LOG_MODE)


@dataclass(frozen=True)
class Launch:
    """How to start one worker, besides its spec: the backend decided all of it."""

    argv: list[str]
    """The worker's command (for a zygote: the runtime's own arguments only)."""
    env: dict[str, str]
    home: Path
    sandboxed: bool
    tmp_dir: Path | None
    """Its private temporary folder, removed when it exits (None in the sandbox)."""


class FramedWorker:
    """Sends and reads a worker's frames; subclasses say how it is killed and waited for."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tmp_dir: Path | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._tmp_dir = tmp_dir

    def kill(self) -> None:
        raise NotImplementedError

    async def send_frame(self, header: dict[str, Any], payload: bytes = b"") -> None:
        if self._writer.is_closing():
            raise WorkerDied("worker is gone")
        try:
            self._writer.write(encode_frame(header, payload))
            await self._writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise WorkerDied(f"worker stopped reading: {exc}") from None

    async def read_frame(self) -> Frame:
        try:
            prefix = await self._reader.readexactly(PREFIX.size)
            header_len, payload_len = decode_prefix(prefix)
            rest = await self._reader.readexactly(header_len + payload_len)
        except (asyncio.IncompleteReadError, ConnectionError):
            raise WorkerDied("worker exited") from None
        except FrameError as exc:
            self.kill()
            raise WorkerDied(f"worker broke the protocol: {exc}") from None
        try:
            header = decode_header(rest[:header_len])
        except FrameError as exc:
            self.kill()
            raise WorkerDied(f"worker broke the protocol: {exc}") from None
        return header, rest[header_len:]

    async def _release(self) -> None:
        """Close the streams and remove the worker's temporary folder, once it has exited."""
        if not self._writer.is_closing():
            self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()
        if self._tmp_dir is not None:
            tmp_dir, self._tmp_dir = self._tmp_dir, None
            await asyncio.to_thread(shutil.rmtree, tmp_dir, True)
