"""What the reliability scenarios share: the processes of a running server as /proc shows
them, calls fired all at once and tallied, and the audit rows of a model counted by request id.

Plain functions over the real interfaces (HTTP, /proc, the CLI): the tests in this folder and
``benchmarks/reliability.py`` run the same scenarios at different sizes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from algora.testing import RunningServer

PROC = Path("/proc")


# -- processes -------------------------------------------------------------------------------


def _parent(pid: int) -> int | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # the name may hold spaces and parentheses


def children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid``."""
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit() and _parent(int(entry.name)) == pid:
            found.append(int(entry.name))
    return sorted(found)


def descendants(pid: int) -> list[int]:
    """``pid``'s children, theirs, and so on (a sandboxed worker is bwrap's grandchild)."""
    tree: list[int] = []
    todo = children(pid)
    while todo:
        tree.extend(todo)
        todo = [c for p in todo for c in children(p)]
    return tree


def cmdline(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def workers(server: RunningServer) -> set[int]:
    """The server's worker processes: its children that run the worker runtime (directly or
    through bwrap); one per replica."""
    assert server.process is not None
    pids = children(server.process.pid)
    return {p for p in pids if " --entrypoint " in cmdline(p) and alive(p)}


def alive(pid: int) -> bool:
    status = PROC / str(pid) / "status"
    try:
        return "\nState:\tZ" not in status.read_text()
    except OSError:
        return False


@dataclass(frozen=True)
class Usage:
    """What a process tree holds: resident memory, open file descriptors, threads."""

    rss_mib: float
    open_files: int
    threads: int

    def __str__(self) -> str:
        return f"RSS {self.rss_mib:.1f} MiB, {self.open_files} open files, {self.threads} threads"


def usage(pids: Iterable[int]) -> Usage:
    """The sum of :class:`Usage` over ``pids`` (those that have exited count nothing)."""
    rss_kib = files = threads = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            status = dict(
                line.split(":", 1) for line in (PROC / str(pid) / "status").read_text().splitlines()
            )
            rss_kib += int(status.get("VmRSS", "0 kB").split()[0])
            threads += int(status["Threads"])
            files += len(os.listdir(PROC / str(pid) / "fd"))
    return Usage(rss_kib / 1024, files, threads)


def kill_leftovers(pids: Iterable[int]) -> None:
    """SIGKILL each of ``pids`` (processes a test's server started) that still runs."""
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# -- calls -----------------------------------------------------------------------------------


@dataclass
class Tally:
    """How a batch of calls was answered: 2xx, 503 with a coded error body, anything else."""

    ok: int = 0
    coded_503: int = 0
    other: Counter[str] = field(default_factory=Counter)
    codes_503: Counter[str] = field(default_factory=Counter)
    results: list[Any] = field(default_factory=list)

    def add(self, status: int | None, body: bytes) -> None:
        if status is None:
            self.other["no answer"] += 1
            return
        if 200 <= status < 300:
            self.ok += 1
            with contextlib.suppress(ValueError):
                self.results.append(json.loads(body).get("result"))
            return
        code = _error_code(body) if status == 503 else None
        if code is not None:
            self.coded_503 += 1
            self.codes_503[code] += 1
        else:
            self.other[f"{status}: {body[:120]!r}"] += 1

    def absorb(self, other: Tally) -> None:
        self.ok += other.ok
        self.coded_503 += other.coded_503
        self.other.update(other.other)
        self.codes_503.update(other.codes_503)
        self.results.extend(other.results)

    @property
    def total(self) -> int:
        return self.ok + self.coded_503 + sum(self.other.values())

    def __str__(self) -> str:
        text = f"{self.ok} 2xx, {self.coded_503} coded 503 {dict(self.codes_503)}"
        return text + f", {sum(self.other.values())} other {dict(self.other)}"


def _error_code(body: bytes) -> str | None:
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) and code else None


def new_request_ids(count: int, prefix: str) -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"{prefix}-{run}-{i}" for i in range(count)]


def fire(
    server: RunningServer,
    path: str,
    bodies: list[Any],
    *,
    request_ids: list[str] | None = None,
    concurrency: int | None = None,
    timeout: float = 120,
) -> Tally:
    """POST each of ``bodies`` (as JSON) to ``path``, up to ``concurrency`` at once (default:
    all of them in flight together); a call with no answer (a refused or dropped connection)
    counts as ``no answer``."""
    return asyncio.run(
        _fire(server, path, bodies, request_ids, concurrency or len(bodies), timeout)
    )


async def _fire(
    server: RunningServer,
    path: str,
    bodies: list[Any],
    request_ids: list[str] | None,
    concurrency: int,
    timeout: float,
) -> Tally:
    tally = Tally()
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Simple {server.key}"}

    async def one(http: httpx.AsyncClient, i: int, body: Any) -> None:
        extra = {"X-Request-Id": request_ids[i]} if request_ids else {}
        async with gate:
            try:
                answer = await http.post(server.url + path, json=body, headers=extra)
            except httpx.HTTPError:
                tally.add(None, b"")
                return
        tally.add(answer.status_code, answer.content)

    async with httpx.AsyncClient(headers=headers, timeout=timeout, limits=limits) as http:
        await asyncio.gather(*(one(http, i, body) for i, body in enumerate(bodies)))
    return tally


def call(server: RunningServer, path: str, body: Any, timeout: float = 60) -> httpx.Response:
    headers = {"Authorization": f"Simple {server.key}"}
    return httpx.post(server.url + path, json=body, headers=headers, timeout=timeout)


def wait_for(check: Callable[[], bool], seconds: float, step: float = 0.05) -> float | None:
    """Seconds until ``check()`` held (polled every ``step``), or None after ``seconds``."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if check():
            return time.monotonic() - started
        time.sleep(step)
    return None


def ready(server: RunningServer) -> bool | None:
    """/readyz on a new connection: True (200), False (503), None (no connection)."""
    try:
        return httpx.get(server.url + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return None


# -- audit -----------------------------------------------------------------------------------


def audit_rows(server: RunningServer, model: str) -> Counter[str]:
    """How many audit rows each request id has among ``model``'s (``GET /api/v1/audit/export``)."""
    answer = httpx.get(
        f"{server.url}/api/v1/audit/export",
        params={"model": model},
        headers={"Authorization": f"Simple {server.key}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    rows = [json.loads(line) for line in answer.text.splitlines() if line.strip()]
    return Counter(str(row.get("request_id")) for row in rows)


@dataclass
class AuditCount:
    """Our request ids against the audit rows of the model they called."""

    sent: int
    missing: int
    duplicated: int

    def __str__(self) -> str:
        return f"{self.sent} calls: {self.missing} without a row, {self.duplicated} with two+"


def count_audit(
    server: RunningServer, model: str, request_ids: list[str], seconds: float = 30
) -> AuditCount:
    """Each of ``request_ids`` against ``model``'s audit rows, once the rows (written in
    batches, off the call path) have all arrived or ``seconds`` have passed."""
    rows: Counter[str] = Counter()

    def arrived() -> bool:
        rows.clear()
        rows.update(audit_rows(server, model))
        return all(rows[r] for r in request_ids)

    wait_for(arrived, seconds, step=0.5)
    return AuditCount(
        sent=len(request_ids),
        missing=sum(1 for r in request_ids if rows[r] == 0),
        duplicated=sum(1 for r in request_ids if rows[r] > 1),
    )


# -- figures ---------------------------------------------------------------------------------


@dataclass
class Figures:
    """What one scenario measured (``lines``) and what it found wrong (``problems``)."""

    scenario: str
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.lines.append(text)

    def expect(self, holds: bool, problem: str) -> None:
        if not holds:
            self.problems.append(problem)

    def report(self) -> str:
        text = "\n".join([self.scenario, *(f"  {line}" for line in self.lines)])
        return text + "".join(f"\n  PROBLEM: {p}" for p in self.problems)


def metric(server: RunningServer, name: str) -> float:
    """The sum of every sample of the Prometheus metric ``name`` at ``/metrics``."""
    answer = httpx.get(
        server.url + "/metrics", headers={"Authorization": f"Simple {server.key}"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    total = 0.0
    for line in answer.text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total
