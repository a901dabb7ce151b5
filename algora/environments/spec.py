"""What identifies an environment: the interpreter's version and the canonical lock.

Two locks that differ only in comments, blank lines, line continuations, whitespace or the
order of their lines (or of the hashes on a line) describe the same environment and hash the
same, so every version with an equivalent lock shares one built environment.
"""

from __future__ import annotations

import functools
import hashlib
import re
import subprocess

from algora.errors import BuildFailed

__all__ = ["canonical_lock", "environment_hash", "interpreter_version", "logical_lines"]

_VERSION_SCRIPT = "import sys; print('%d.%d.%d' % sys.version_info[:3])"
_COMMENT = re.compile(r"(^|\s)#.*$")
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


@functools.lru_cache(maxsize=32)
def interpreter_version(python: str) -> str:
    """The ``X.Y.Z`` version of the interpreter ``python`` (asked once per process)."""
    try:
        completed = subprocess.run(
            [python, "-c", _VERSION_SCRIPT],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildFailed(f"interpreter {python!r} cannot be run: {exc}") from exc
    version = completed.stdout.strip()
    if completed.returncode != 0 or not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise BuildFailed(
            f"interpreter {python!r} did not report its version",
            details={"log": (completed.stdout + completed.stderr)[-4000:]},
        )
    return version


def canonical_lock(lock: str) -> list[str]:
    """The lock's requirement entries in canonical form, sorted.

    Each entry is the requirement with its whitespace collapsed and its project name
    normalized (PEP 503), followed by its ``--hash`` options, sorted.
    """
    entries: list[str] = []
    for _start, line in logical_lines(lock):
        tokens = line.split()
        hashes = sorted(token for token in tokens if token.startswith("--hash"))
        requirement = " ".join(token for token in tokens if not token.startswith("--hash"))
        requirement = _NAME.sub(lambda m: re.sub(r"[-_.]+", "-", m.group(1)).lower(), requirement)
        entries.append(" ".join([requirement, *hashes]))
    return sorted(entries)


def environment_hash(python_version: str, lock: str) -> str:
    """sha256 hex digest identifying the environment built by ``python_version`` from ``lock``."""
    canonical = "\n".join(["algora-environment-v1", f"python {python_version.strip()}"])
    canonical += "\n" + "\n".join(canonical_lock(lock)) + "\n"
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def logical_lines(text: str) -> list[tuple[int, str]]:
    """``text``'s lines with ``#`` comments removed and backslash continuations joined, each
    with the number of the line it starts on; blank ones dropped."""
    lines: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        line = _COMMENT.sub("", raw).rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            lines.append((start, line))
    if pending.strip():
        lines.append((start, pending.strip()))
    return lines
