"""Faults on the workers' side, each a scenario sized by its caller: a worker killed under
load, a hung model that ignores SIGTERM, a new version that fails to load under traffic, and a
soak. Each starts its own ``algora serve`` and returns :class:`Figures`."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from algora.errors import AlgoraError
from algora.sdk.client import Client
from algora.testing import RunningServer, write_model

from .harness import (
    Figures,
    Tally,
    Usage,
    alive,
    call,
    count_audit,
    descendants,
    fire,
    metric,
    new_request_ids,
    ready,
    usage,
    wait_for,
    workers,
)

SLEEPER = """
import time


def apply(input: float) -> str:
    time.sleep(input)
    return "done"
"""
HELLO = 'def apply(input: str) -> str:\n    return "Hello " + input\n'
HUNG = """
import signal
import time
from collections import Counter


class Model:
    def load(self):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # deaf to a polite stop

    def predict(self, input):
        while input == "hang":
            time.sleep(1)
        return "answered"
"""
QUEUED = "algora_pool_queued_calls"
RECOVERY_LIMIT = 60.0
"""Seconds a scenario waits for a worker to come back before it calls that a failure."""


def publish(
    admin: Client, root: Path, name: str, code: str, version: str | None = None, **kw: Any
) -> dict[str, Any]:
    """Publish ``code`` as ``admin/<name>`` from a folder under ``root``."""
    return admin.publish(write_model(root / "models" / name, name, code, **kw), version=version)


def serve_model(
    server: RunningServer, root: Path, name: str, code: str, body: Any, **kw: Any
) -> set[int]:
    """Publish ``code`` as ``admin/<name>`` and call it once with ``body``: the worker
    processes that started meanwhile (at the publish when ``ALGORA_WARM_ON_PUBLISH`` is on,
    the production default, or at the call)."""
    before = workers(server)
    with server.client() as admin:
        publish(admin, root, name, code, **kw)
    answer = call(server, f"/v1/algo/admin/{name}", body)
    assert answer.status_code == 200, answer.text
    return workers(server) - before


class SteadyCaller:
    """Calls ``path`` in a thread, one call after another, until stopped; tallies the answers."""

    def __init__(self, server: RunningServer, path: str, body: Any) -> None:
        self.tally = Tally()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(server, path, body), daemon=True)

    def _run(self, server: RunningServer, path: str, body: Any) -> None:
        while not self._stop.is_set():
            try:
                answer = call(server, path, body, timeout=30)
            except httpx.HTTPError:
                self.tally.add(None, b"")
                continue
            self.tally.add(answer.status_code, answer.content)

    def __enter__(self) -> SteadyCaller:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def kill_a_worker(root: Path, *, calls: int = 200, service_s: float = 0.02) -> Figures:
    """kill -9 the one worker of a model while ``calls`` calls to it are in flight."""
    figures = Figures(f"kill -9 a worker under {calls} in-flight calls")
    with RunningServer(root / "data") as server:
        bystander = serve_model(server, root, "bystander", HELLO, "x")
        (victim,) = serve_model(server, root, "victim", SLEEPER, 0)
        ids = new_request_ids(calls, "kill-worker")
        results: list[Tally] = []
        load = threading.Thread(
            target=lambda: results.append(
                fire(server, "/v1/algo/admin/victim", [service_s] * calls, request_ids=ids)
            )
        )
        with SteadyCaller(server, "/v1/algo/admin/bystander", "y") as bystanding:
            load.start()
            queued = wait_for(lambda: metric(server, QUEUED) >= calls // 2, RECOVERY_LIMIT)
            os.kill(victim, signal.SIGKILL)
            back = wait_for(
                lambda: bool(workers(server) - bystander - {victim}) and ready(server) is True,
                RECOVERY_LIMIT,
            )
            load.join()
        tally, others = results[0], bystanding.tally
        audit = count_audit(server, "admin/victim", ids)
        figures.note(f"victim: {tally}")
        figures.expect(queued is not None, f"{calls // 2} calls never queued at once")
        figures.note(f"bystander, called meanwhile: {others}")
        figures.note(f"worker back (new process, /readyz 200) {seconds(back)} after the kill")
        figures.note(f"audit rows: {audit}")
        figures.expect(tally.total == calls and not tally.other, f"uncoded answers: {tally}")
        figures.expect(not alive(victim), "the killed worker still runs")
        figures.expect(back is not None, f"no worker back within {RECOVERY_LIMIT:g} s")
        figures.expect(audit.missing == audit.duplicated == 0, f"audit rows: {audit}")
        figures.expect(
            others.ok > 0 and others.total == others.ok, f"the bystander failed: {others}"
        )
        figures.expect(bystander <= workers(server), "the bystander's worker was replaced")
    return figures


def hung_model(root: Path, *, timeout_s: float = 2.0) -> Figures:
    """A model that ignores SIGTERM and never returns: 504 at its timeout, its worker killed
    and replaced, the next call answered."""
    figures = Figures(f"a hung model that ignores SIGTERM (call timeout {timeout_s:g} s)")
    serving = f"\n[serving]\ntimeout = {timeout_s}\n"
    with RunningServer(root / "data") as server:
        (worker,) = serve_model(
            server, root, "hung", HUNG, "ping", entrypoint="model:Model", extra_manifest=serving
        )
        tree = [worker, *descendants(worker)]
        started = time.monotonic()
        answer = call(server, "/v1/algo/admin/hung", "hang", timeout=timeout_s + RECOVERY_LIMIT)
        took = time.monotonic() - started
        code = _code(answer)
        replaced = wait_for(
            lambda: not any(alive(p) for p in tree) and bool(workers(server)), RECOVERY_LIMIT
        )
        after = call(server, "/v1/algo/admin/hung", "ping")
        figures.note(f"hung call answered {answer.status_code} {code} after {took:.2f} s")
        figures.note(f"worker killed and replaced {seconds(replaced)} after that answer")
        figures.note(f"next call: {after.status_code} {after.text[:80]}")
        figures.expect(answer.status_code == 504 and code == "timeout", f"hung: {answer.text}")
        figures.expect(took >= timeout_s, f"answered before the timeout: {took:.2f} s")
        figures.expect(replaced is not None, "the hung worker was not killed and replaced")
        figures.expect(
            after.status_code == 200 and after.json()["result"] == "answered",
            f"the next call: {after.status_code} {after.text}",
        )
    return figures


BROKEN = "raise RuntimeError('cannot load: the weights are missing')\n" + HELLO


def broken_version(root: Path, *, callers: int = 4, seconds: float = 2.0) -> Figures:
    """Publish a version that fails to load while ``callers`` keep calling ``latest``."""
    figures = Figures(f"a new version that fails to load, under {callers} steady callers")
    with RunningServer(root / "data") as server, server.client() as admin:
        serve_model(server, root, "steady", HELLO, "x", version="1.0.0")
        folder = write_model(root / "models" / "broken", "steady", BROKEN)
        with contextlib.ExitStack() as stack:
            traffic = [
                stack.enter_context(SteadyCaller(server, "/v1/algo/admin/steady/latest", "x"))
                for _ in range(callers)
            ]
            time.sleep(seconds / 2)
            try:
                published: Any = admin.publish(folder, version="2.0.0")
            except AlgoraError as exc:
                published = exc
            time.sleep(seconds / 2)
        tally = Tally()
        for caller in traffic:
            tally.absorb(caller.tally)
        versions = Counter(str(r) for r in tally.results)
        figures.note(f"calls to latest meanwhile: {tally}; answers {dict(versions)}")
        figures.note(f"the publish of 2.0.0: {published!r:.200}")
        figures.expect(tally.ok > 0 and tally.total == tally.ok, f"failed calls: {tally}")
        figures.expect(set(versions) == {"Hello x"}, f"answers from another version: {versions}")
        figures.expect(
            isinstance(published, AlgoraError) or published.get("status") == "failed",
            f"the broken version was published: {published}",
        )
    return figures


RSS_GROWTH = (0.10, 16.0)
"""Resident memory may grow by 10 % or 16 MiB, whichever is more, after warm-up."""
FILES_GROWTH = 4
THREADS_GROWTH = 4


def soak(root: Path, *, calls: int = 3000, warmup: int = 500, concurrency: int = 8) -> Figures:
    """``calls`` calls to one model, ``concurrency`` at a time: the gateway's and the
    workers' memory, open files and threads, measured after ``warmup`` calls and at the end."""
    figures = Figures(f"a soak of {calls} calls, {concurrency} at a time")
    path = "/v1/algo/admin/soak"
    with RunningServer(root / "data") as server:
        first = serve_model(server, root, "soak", HELLO, "x")
        warmed = fire(server, path, ["x"] * warmup, concurrency=concurrency)
        before = _usages(server)
        measured = fire(server, path, ["x"] * (calls - warmup), concurrency=concurrency)
        after = _usages(server)
        figures.note(f"after {warmup} calls of warm-up: {warmed}")
        figures.note(f"then {calls - warmup} calls: {measured}")
        share, floor = RSS_GROWTH
        for part in ("gateway", "workers"):
            was, now = before[part], after[part]
            figures.note(f"{part}: {was} -> {now}")
            figures.expect(
                now.rss_mib <= max(was.rss_mib * (1 + share), was.rss_mib + floor),
                f"{part} memory grew: {was.rss_mib:.1f} -> {now.rss_mib:.1f} MiB",
            )
            figures.expect(
                now.open_files <= was.open_files + FILES_GROWTH,
                f"{part} open files grew: {was.open_files} -> {now.open_files}",
            )
            figures.expect(
                now.threads <= was.threads + THREADS_GROWTH,
                f"{part} threads grew: {was.threads} -> {now.threads}",
            )
        figures.expect(
            measured.ok == calls - warmup and warmed.ok == warmup, f"failed calls: {measured}"
        )
        figures.expect(workers(server) == first, "the model's worker was replaced during the soak")
    return figures


def _usages(server: RunningServer) -> dict[str, Usage]:
    """The gateway's usage (its process and helpers) and its workers' (their process trees)."""
    assert server.process is not None
    trees = [p for w in workers(server) for p in (w, *descendants(w))]
    gateway = [server.process.pid, *(p for p in descendants(server.process.pid) if p not in trees)]
    return {"gateway": usage(gateway), "workers": usage(trees)}


def _code(answer: httpx.Response) -> str | None:
    try:
        return str(answer.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"
