"""What a pool reports: a snapshot of its state, and the tail of its workers' log."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["PoolStats", "read_log_tail"]

_LOG_TAIL_BYTES = 8192


@dataclass(frozen=True)
class PoolStats:
    """A snapshot for readiness checks and metrics."""

    replicas: int
    alive: int
    busy: int
    queued: int
    in_flight: int
    restarts: int
    healthy: bool
    restart_error: str | None
    """Why the latest replacement worker failed to start, while replacements keep failing."""
    batch_sizes: tuple[int, ...] = ()
    """Dispatches by size, per ``algora.workers.batching.BATCH_BUCKETS`` (for metrics)."""
    pids: tuple[int, ...] = ()
    """The live workers' process ids (for their memory, see ``algora.workers.memory``)."""


def read_log_tail(path: Path, size: int = _LOG_TAIL_BYTES) -> str:
    """The last ``size`` bytes of a worker log, decoded leniently; empty when unreadable."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            end = f.tell()
            f.seek(max(0, end - size))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
