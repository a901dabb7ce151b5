"""Faults on the gateway's side, each a scenario sized by its caller: a SIGTERM under load, and
kill -9 again and again during publishes and hosted-data writes. Each starts its own
``algora serve`` and returns :class:`Figures`."""

from __future__ import annotations

import contextlib
import random
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from algora.errors import AlgoraError
from algora.testing import RunningServer, write_model

from ..helpers import algora
from .harness import (
    Figures,
    Tally,
    call,
    descendants,
    fire,
    kill_leftovers,
    metric,
    ready,
    wait_for,
)
from .worker_faults import HELLO, RECOVERY_LIMIT, SLEEPER, seconds, serve_model

TEMP_PREFIX = ".algora-upload-"
"""How the collection store names a file it is still writing (algora/store/collections.py)."""


@dataclass
class _Ledger:
    """What the writers sent and what the gateway acknowledged, across kills."""

    acknowledged: dict[str, bytes] = field(default_factory=dict)
    """File name: the bytes of its last write answered 200."""
    attempted: dict[str, list[bytes]] = field(default_factory=dict)
    """File name: every payload sent for it, answered or not."""
    unchecked: list[str] = field(default_factory=list)
    """Acknowledged since the last restart's read-back."""
    published: list[str] = field(default_factory=list)
    """Versions whose publish answered ``ready``."""


def sigterm_under_load(root: Path, *, in_flight: int = 4, hold_s: float = 4.0) -> Figures:
    """SIGTERM the gateway while ``in_flight`` calls of ``hold_s`` seconds run on a model."""
    figures = Figures(f"SIGTERM a gateway under {in_flight} in-flight calls of {hold_s:g} s")
    serving = f"\n[serving]\nreplicas = {in_flight}\n"
    with RunningServer(root / "data") as server:
        assert server.process is not None
        serve_model(server, root, "slow", SLEEPER, 0, extra_manifest=serving)
        results: list[Tally] = []
        load = threading.Thread(
            target=lambda: results.append(fire(server, "/v1/algo/admin/slow", [hold_s] * in_flight))
        )
        load.start()
        running = wait_for(
            lambda: metric(server, "algora_pool_busy_replicas") >= in_flight, RECOVERY_LIMIT
        )
        server.process.send_signal(signal.SIGTERM)
        not_ready = wait_for(lambda: ready(server) is not True, hold_s, step=0.01)
        still_running = load.is_alive()
        try:
            late = call(server, "/v1/algo/admin/slow", 0, timeout=5)
            refused = f"answered {late.status_code}"
        except httpx.HTTPError as exc:
            refused = f"refused ({type(exc).__name__})"
        load.join()
        exited = wait_for(lambda: server.process.poll() is not None, RECOVERY_LIMIT)
        tally = results[0]
        figures.note(f"/readyz not ready {seconds(not_ready)} after the SIGTERM")
        figures.note(f"a new call after it: {refused}")
        figures.note(f"the in-flight calls: {tally}")
        figures.note(f"the gateway exited {seconds(exited)} after they were answered")
        figures.expect(running is not None, f"{in_flight} calls never ran at once")
        figures.expect(
            not_ready is not None and still_running,
            "/readyz still said ready while the in-flight calls ran",
        )
        figures.expect(refused.startswith("refused"), f"a new call was {refused}")
        figures.expect(tally.ok == in_flight, f"in-flight calls lost: {tally}")
        figures.expect(exited is not None, "the gateway did not exit")
    return figures


def kill_during_writes(root: Path, *, kills: int = 5, seed: int = 16) -> Figures:
    """kill -9 the gateway ``kills`` times while it takes publishes and hosted-data writes;
    after each, check the database, every acknowledged write, the data folder and the audit
    chain."""
    figures = Figures(f"kill -9 a gateway {kills} times during publishes and data writes")
    data = root / "data"
    rng = random.Random(seed)
    ledger = _Ledger()
    checks: list[str] = []
    with RunningServer(data) as first:
        made = _data(first, "POST", "/v1/data/admin", json={"name": "rely"})
        assert made.status_code == 200, made.text
        (collection,) = (p for p in data.rglob("rely") if p.parent.name == "admin")
    for round_ in range(kills):
        with RunningServer(data) as server:  # stopped by its PID if a check below raises
            _check_round(figures, round_, server, ledger, ledger.unchecked)
            _kill_while_writing(server, root, round_, rng, ledger)
        integrity = _integrity(data / "registry.db")
        checks.append(integrity)
        figures.expect(integrity == "ok", f"after kill {round_ + 1}: integrity_check {integrity}")
    with RunningServer(data) as server:
        _check_round(figures, kills, server, ledger, list(ledger.acknowledged))
        with server.client() as admin:
            statuses = {v["version"]: v["status"] for v in admin.versions("admin/churn")}
        orphans = sorted(p.name for p in collection.rglob(f"{TEMP_PREFIX}*"))
    figures.note(f"SQLite integrity_check after each kill: {dict(Counter(checks))}")
    figures.note(
        f"{len(ledger.acknowledged)} data writes acknowledged, each read back after restarts"
    )
    counts = dict(Counter(statuses.values()))
    figures.note(f"{len(ledger.published)} publishes acknowledged; versions now: {counts}")
    figures.note(f"upload temp files left on disk (not listed): {len(orphans)}")
    figures.expect(
        all(statuses.get(v) == "ready" for v in ledger.published),
        f"acknowledged versions: {statuses}",
    )
    figures.expect(
        all(s in ("ready", "failed") for s in statuses.values()),
        f"versions left half-published: {statuses}",
    )
    for name, sent in ledger.attempted.items():
        path = collection / name
        if path.is_file() and path.read_bytes() not in sent:
            figures.problems.append(f"{name} on disk holds bytes that no write sent")
    return figures


def _kill_while_writing(
    server: RunningServer,
    root: Path,
    round_: int,
    rng: random.Random,
    ledger: _Ledger,
) -> None:
    """Write files and publish versions from two threads; SIGKILL the server meanwhile."""
    assert server.process is not None
    stop = threading.Event()
    threads = [
        threading.Thread(target=_writer, args=(server, round_, rng.randbytes, stop, ledger)),
        threading.Thread(target=_publisher, args=(server, root, round_, stop, ledger)),
    ]
    for thread in threads:
        thread.start()
    time.sleep(rng.uniform(0.5, 2.5))
    leftovers = descendants(server.process.pid)
    server.process.kill()  # SIGKILL: no shutdown path runs
    server.process.wait()
    stop.set()
    for thread in threads:
        thread.join()
    kill_leftovers(leftovers)  # sandboxed workers die with it; unsandboxed ones would not


def interrupted_upload(root: Path, *, size: int = 4 << 20) -> Figures:
    """kill -9 the gateway in the middle of one slow upload, start it again: is the upload's
    temporary file gone from the collection's folder?"""
    figures = Figures("kill -9 a gateway in the middle of an upload")
    data = root / "data"
    with RunningServer(data) as server:
        assert server.process is not None
        made = _data(server, "POST", "/v1/data/admin", json={"name": "rely"})
        assert made.status_code == 200, made.text
        (collection,) = (p for p in data.rglob("rely") if p.parent.name == "admin")

        def slowly() -> Iterator[bytes]:
            for _ in range(size >> 16):
                yield b"x" * (1 << 16)
                time.sleep(0.05)

        writer = threading.Thread(target=_put_quietly, args=(server, "big.bin", slowly()))
        writer.start()
        started = wait_for(lambda: bool(list(collection.glob(f"{TEMP_PREFIX}*"))), 30)
        leftovers = descendants(server.process.pid)
        server.process.kill()
        server.process.wait()
        writer.join()
        kill_leftovers(leftovers)
    with RunningServer(data) as server:
        listed = _data(server, "GET", "/v1/data/admin/rely")
    orphans = sorted(p.name for p in collection.glob(f"{TEMP_PREFIX}*"))
    figures.note(f"temp file seen during the upload: {started is not None}")
    figures.note(f"listing after the restart: {listed.json()}")
    figures.note(f"temp files left in the collection's folder: {orphans}")
    figures.expect(started is not None, "the upload never started")
    figures.expect(not listed.json().get("files"), "the half upload is listed")
    figures.expect(not orphans, f"the interrupted upload's temp file is left on disk: {orphans}")
    return figures


def _put_quietly(server: RunningServer, name: str, body: Iterator[bytes]) -> None:
    with contextlib.suppress(httpx.HTTPError):
        _data(server, "PUT", f"/v1/data/admin/rely/{name}", content=body)


def _data(server: RunningServer, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Simple {server.key}"}
    return httpx.request(method, server.url + path, headers=headers, timeout=30, **kw)


def _writer(
    server: RunningServer,
    round_: int,
    randbytes: Callable[[int], bytes],
    stop: threading.Event,
    ledger: _Ledger,
) -> None:
    """PUT files of up to 1 MiB until stopped or the gateway is gone."""
    i = 0
    while not stop.is_set():
        name = f"r{round_}-{i}.bin"
        payload = randbytes(1 + (i * 104729) % (1 << 20))
        ledger.attempted.setdefault(name, []).append(payload)
        try:
            answer = _data(server, "PUT", f"/v1/data/admin/rely/{name}", content=payload)
        except httpx.HTTPError:
            return
        if answer.status_code == 200:
            ledger.acknowledged[name] = payload
            ledger.unchecked.append(name)
        i += 1


def _publisher(
    server: RunningServer, root: Path, round_: int, stop: threading.Event, ledger: _Ledger
) -> None:
    """Publish new versions of one model until stopped or the gateway is gone."""
    j = 0
    with server.client() as admin:
        while not stop.is_set():
            version = f"{round_ + 1}.{j}.0"
            folder = write_model(root / "models" / f"churn-{version}", "churn", HELLO)
            try:
                final = admin.publish(folder, version=version)
            except (AlgoraError, httpx.HTTPError):
                return
            if final.get("status") == "ready":
                ledger.published.append(version)
            j += 1


def _check_round(
    figures: Figures,
    round_: int,
    server: RunningServer,
    ledger: _Ledger,
    names: list[str],
) -> None:
    """After a restart: the writes in ``names`` read back, no temp file listed, the chain."""
    for name in names:
        answer = _data(server, "GET", f"/v1/data/admin/rely/{name}")
        if answer.status_code != 200 or answer.content != ledger.acknowledged[name]:
            figures.problems.append(f"after restart {round_}: {name} reads {answer.status_code}")
    names.clear()
    listed = _data(server, "GET", "/v1/data/admin/rely", params={"limit": 1000})
    visible = [f["filename"] for f in listed.json().get("files", [])]
    figures.expect(
        not [n for n in visible if n.startswith(TEMP_PREFIX)],
        f"after restart {round_}: a temp file is listed",
    )
    verify = algora("audit", "verify", server=server)
    figures.expect(verify.returncode == 0, f"after restart {round_}: audit {verify.stdout}")


def _integrity(database: Path) -> str:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])
