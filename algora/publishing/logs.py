"""Build logs: one capped, owner-only file per build, and what a failed build writes to it."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from algora.errors import AlgoraError

__all__ = ["BuildLogs", "failure_of"]

logger = logging.getLogger(__name__)


class BuildLogs:
    """One append-only, owner-only log file per version while it builds.

    A log is capped: past ``limit`` bytes only the ``==>`` step and outcome lines are kept,
    so a build that prints without end cannot fill the disk or the registry.
    """

    def __init__(self, root: Path, limit: int = 4 * 1024 * 1024) -> None:
        self.root = root
        self.root.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # DATA_DIR/logs
        self.root.mkdir(exist_ok=True, mode=0o700)
        self.limit = limit
        self._lock = threading.Lock()

    def path(self, version_id: int) -> Path:
        return self.root / f"{version_id}.log"

    def writer(self, version_id: int) -> Callable[[str], None]:
        path = self.path(version_id)
        state = {"size": 0, "truncated": False}

        def write(line: str) -> None:
            data = (line.rstrip("\n")[:10_000] + "\n").encode("utf-8", errors="replace")
            if state["size"] + len(data) > self.limit and not line.startswith("==> "):
                if state["truncated"]:
                    return
                state["truncated"] = True
                data = b"... (build output past the log limit is not kept)\n"
            with self._lock:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                with os.fdopen(fd, "ab") as handle:
                    handle.write(data)
                state["size"] += len(data)

        return write

    def read(self, version_id: int, offset: int = 0) -> tuple[str, int]:
        path = self.path(version_id)
        if not path.exists():
            return "", offset
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            if offset >= size:  # nothing past the end (a seek far past it is an error)
                return "", max(offset, 0)
            handle.seek(max(offset, 0))
            data = handle.read()
        return data.decode("utf-8", errors="replace"), max(offset, 0) + len(data)


def failure_of(exc: Exception, log: Callable[[str], None], what: str) -> tuple[str, str]:
    """The failure code and reason a build that raised ``exc`` records, with the error's
    stack trace, stdout and log tail written to ``log``; ``what`` names it in the server log."""
    if isinstance(exc, AlgoraError):
        for key in ("stacktrace", "stdout", "log_tail"):
            text = exc.details.get(key)
            if isinstance(text, str) and text.strip():
                log(f"--- {key.replace('_', ' ')} ---")
                for line in text.rstrip().splitlines()[-200:]:
                    log(line)
        reason = exc.message
        error_type = exc.details.get("error_type")
        if error_type and not reason.startswith(str(error_type)):
            reason = f"{error_type}: {reason}"
        return exc.code, reason
    logger.exception("build of %s failed unexpectedly", what, exc_info=exc)
    return (
        "internal_error",
        f"the platform failed while building ({type(exc).__name__}); "
        "an administrator can find the details in the server log",
    )
