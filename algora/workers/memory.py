"""The machine's memory budget for model workers: what each pool holds (PSS), and which idle
pools to stop, least recently used first, when the workers hold more than the budget.

PSS (proportional set size) counts a page shared by several processes in equal parts, so the
sum over the workers is what they really cost the machine. It is read from
``/proc/PID/smaps_rollup`` for each worker and everything it started (the sandbox's own
process, the interpreter, processes the model forked): a few hundred microseconds a process,
so it is read when a pool starts and on the reaper's ticks, never on a call.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["budget_bytes", "over_budget", "process_tree", "pss_bytes"]

_DEFAULT_SHARE = 0.75
"""Of the machine's memory, what the workers may hold when no budget is set."""


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc's children lists)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo.extend(int(child) for child in (task / "children").read_text().split())
    return found


def pss_bytes(pids: Iterable[int]) -> int:
    """The PSS of these processes and all they started, in bytes (0 where /proc cannot say)."""
    total = 0
    for root in pids:
        for pid in process_tree(root):
            try:
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            except OSError:
                continue
            for line in rollup.splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
    return total


def budget_bytes(budget_mb: int | None) -> int | None:
    """The budget in bytes: ``budget_mb``, else a share of the machine's memory; None where
    the machine's memory is unknown."""
    if budget_mb is not None:
        return budget_mb * 1024 * 1024
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return None
    return int(total * _DEFAULT_SHARE)


def over_budget(
    usage: Mapping[str, int], last_used: Mapping[str, float], idle: set[str], budget: int
) -> list[str]:
    """The idle pools to stop, least recently used first, until the rest fit in ``budget``
    (``usage``: bytes per pool key; pools that are not idle are never chosen)."""
    total = sum(usage.values())
    chosen: list[str] = []
    for key in sorted(idle & usage.keys(), key=lambda k: last_used.get(k, 0.0)):
        if total <= budget:
            break
        chosen.append(key)
        total -= usage[key]
    return chosen
