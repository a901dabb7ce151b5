"""The one worker backend interface: local subprocesses today, Ray actors later."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from algora.workers.spec import WorkerSpec

__all__ = ["Frame", "WorkerBackend", "WorkerHandle"]

Frame = tuple[dict[str, Any], bytes]
"""A decoded frame: its JSON header and its raw payload."""


class WorkerHandle(Protocol):
    """One running worker process, spoken to in frames (docs/protocol.md)."""

    @property
    def pid(self) -> int | None:
        """The worker's process id where it has one."""
        ...

    @property
    def returncode(self) -> int | None:
        """The exit status once the worker has exited, else None."""
        ...

    async def send_frame(self, header: dict[str, Any], payload: bytes = b"") -> None:
        """Write one frame; raise :class:`algora.errors.WorkerDied` if the worker is gone."""
        ...

    async def read_frame(self) -> Frame:
        """Read the next frame; raise :class:`algora.errors.WorkerDied` at end of stream."""
        ...

    def kill(self) -> None:
        """Kill the worker (and what it started) now; safe to call more than once."""
        ...

    async def wait(self) -> int:
        """Wait for the worker to exit, release its pipes, and return its exit status."""
        ...


class WorkerBackend(Protocol):
    """Starts workers. ``data_dir`` holds the installed runtime and the workers' private homes."""

    async def start(self, spec: WorkerSpec, data_dir: Path) -> WorkerHandle: ...
