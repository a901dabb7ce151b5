"""Unauthenticated bodies: how fast the 401 comes, what they cost the server, and /healthz.

    .venv/bin/python benchmarks/unauth_body.py [--sizes 100,300] [--attackers 4]
        [--duration 5] [--path /api/v1/keys]

Issue 11, finding 1: ``POST /api/v1/keys`` with no key and a 100 MB JSON body was answered
401 after 8.4 s, stalled /healthz for up to 8 s, and 300 MB took the server from 186 MB to
1.9 GB. For each size (in MB) this starts ``algora serve`` on a temporary data dir, then for
DURATION seconds ATTACKERS threads each send, over and over, a request that declares that size
with no key and pushes the body as fast as the server takes it, while another thread asks
``/healthz`` every 10 ms. It prints, per size: the time from the end of the request's headers
to the 401 (p50, p99, max), how many bytes of each body the server took before it closed the
connection (the sockets' buffers, at most), the server's RSS before and its peak (VmHWM),
and /healthz p50/p99/max; and writes benchmarks/results/unauth-body-<time>.json.
Targets: the 401 within 50 ms of the headers, memory flat, /healthz p99 under 50 ms.
Run it with another checkout's interpreter to measure that checkout (the server is started as
``sys.executable -m algora serve``).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from algora.testing import RunningServer

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MB = 1024 * 1024
CHUNK = b"0," * (128 * 1024)


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def body_chunks(size: int) -> Iterator[bytes]:
    """A JSON array of ``size`` bytes, as the probe sent (``[0,0,...,0]``), in chunks."""
    yield b"["
    left = size - 3
    while left >= len(CHUNK):
        yield CHUNK
        left -= len(CHUNK)
    yield b" " * left + b"0]"


def attack_once(port: int, path: str, size: int) -> tuple[float, int, int]:
    """One unauthenticated request of ``size`` bytes: (seconds to the status line, bytes of
    the body the server took, status)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    ).encode()
    sent = 0
    done = threading.Event()

    def flood() -> None:
        nonlocal sent
        with contextlib.suppress(OSError):
            for chunk in body_chunks(size):
                view = memoryview(chunk)
                while view and not done.is_set():
                    taken = sock.send(view)
                    sent += taken
                    view = view[taken:]
                if done.is_set():
                    return

    sock.sendall(head)
    started = time.monotonic()
    sender = threading.Thread(target=flood, daemon=True)
    sender.start()
    try:
        response = http.client.HTTPResponse(sock)
        response.begin()
        seconds = time.monotonic() - started
        response.read()
        status = response.status
    finally:
        done.set()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        sender.join(timeout=60)
    return seconds, sent, status


def measure(size_mb: int, attackers: int, duration: float, path: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="unauth-body-") as tmp:
        server = RunningServer(Path(tmp) / "data").start()
        try:
            assert server.process is not None
            pid = server.process.pid
            rss_before_kb = _status_kb(pid, "VmRSS")
            hwm_before_kb = _status_kb(pid, "VmHWM")
            stop = threading.Event()
            refusals: list[tuple[float, int, int]] = []
            health: list[float] = []

            def attacker() -> None:
                while not stop.is_set():
                    refusals.append(attack_once(server.port, path, size_mb * MB))

            def prober() -> None:
                with httpx.Client(base_url=server.url, timeout=30) as client:
                    while not stop.is_set():
                        started = time.monotonic()
                        client.get("/healthz").raise_for_status()
                        health.append(time.monotonic() - started)
                        time.sleep(0.01)

            threads = [threading.Thread(target=attacker) for _ in range(attackers)]
            threads.append(threading.Thread(target=prober))
            for thread in threads:
                thread.start()
            time.sleep(duration)
            stop.set()
            for thread in threads:
                thread.join(timeout=600)
            peak_kb = _status_kb(pid, "VmHWM")
        finally:
            server.stop()
    seconds = [r[0] for r in refusals]
    return {
        "size_mb": size_mb,
        "requests": len(refusals),
        "statuses": sorted({r[2] for r in refusals}),
        "to_401_ms": {
            "p50": 1000 * statistics.median(seconds),
            "p99": 1000 * _percentile(seconds, 0.99),
            "max": 1000 * max(seconds),
        },
        "body_taken_mb_max": max(r[1] for r in refusals) / MB,
        "rss_before_mb": rss_before_kb / 1024,
        "peak_rss_before_mb": hwm_before_kb / 1024,
        "peak_rss_mb": peak_kb / 1024,
        "healthz_ms": {
            "count": len(health),
            "p50": 1000 * statistics.median(health),
            "p99": 1000 * _percentile(health, 0.99),
            "max": 1000 * max(health),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,300", help="body sizes in MB, comma-separated")
    parser.add_argument("--attackers", type=int, default=4)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--path", default="/api/v1/keys")
    args = parser.parse_args()
    results = [
        measure(int(size), args.attackers, args.duration, args.path)
        for size in args.sizes.split(",")
    ]
    for r in results:
        print(
            f"{r['size_mb']:>4} MB x{r['requests']:<4} status {r['statuses']}  "
            f"401 after p50 {r['to_401_ms']['p50']:.1f} ms, p99 {r['to_401_ms']['p99']:.1f} ms, "
            f"max {r['to_401_ms']['max']:.1f} ms; body taken <= {r['body_taken_mb_max']:.1f} MB; "
            f"RSS {r['rss_before_mb']:.0f} MB -> peak {r['peak_rss_mb']:.0f} MB; "
            f"/healthz p50 {r['healthz_ms']['p50']:.1f} ms, p99 {r['healthz_ms']['p99']:.1f} ms, "
            f"max {r['healthz_ms']['max']:.1f} ms ({r['healthz_ms']['count']} probes)"
        )
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"unauth-body-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({"python": sys.executable, "results": results}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
