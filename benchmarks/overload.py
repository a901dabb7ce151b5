"""Overload: a model offered ten times what it can serve, for a bounded time.

    .venv/bin/python benchmarks/overload.py [--seconds 30] [--factor 10] [--service-ms 50]

``algora serve`` (pinned to core 0) serves a model that takes ``--service-ms`` per call on one
replica, so it answers about 1000 / service-ms calls a second. An open-loop client (core 1)
offers ``--factor`` times that, at a steady rate, each call with a 5 s timeout, for
``--seconds``; meanwhile it asks ``/healthz`` every 50 ms. It reports how many calls got each
status (the target: only 200 and 503, no timeout), how fast the refusals came, the health
probe's p50/p99 (target: p99 under 50 ms), and writes benchmarks/results/overload-<time>.json.
Everything runs on 127.0.0.1; the server is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serving  # this folder's shared helpers

MODEL = textwrap.dedent(
    """
    import time

    def apply(input):
        time.sleep(float(input))
        return "done"
    """
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def offer(url: str, auth: str, args: argparse.Namespace) -> dict[str, Any]:
    capacity = 1000 / args.service_ms
    rate = capacity * args.factor
    statuses: collections.Counter[str] = collections.Counter()
    refusal_ms: list[float] = []
    answer_ms: list[float] = []
    health_ms: list[float] = []
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=2000)
    headers = {"Authorization": auth, "Content-Type": "application/json"}
    body = json.dumps(args.service_ms / 1000)
    async with httpx.AsyncClient(timeout=15, limits=limits) as client:

        async def one() -> None:
            started = time.perf_counter()
            try:
                response = await client.post(
                    url, content=body, headers=headers, params={"timeout": 5}
                )
            except httpx.TimeoutException:
                statuses["client timeout"] += 1
                return
            except httpx.HTTPError as error:
                statuses[type(error).__name__] += 1
                return
            took = (time.perf_counter() - started) * 1000
            statuses[str(response.status_code)] += 1
            (refusal_ms if response.status_code == 503 else answer_ms).append(took)

        async def probe(until: float) -> None:
            base = url.split("/v1/")[0]
            async with httpx.AsyncClient(timeout=10) as prober:
                while time.monotonic() < until:
                    started = time.perf_counter()
                    await prober.get(base + "/healthz")
                    health_ms.append((time.perf_counter() - started) * 1000)
                    await asyncio.sleep(0.05)

        until = time.monotonic() + args.seconds
        prober = asyncio.create_task(probe(until))
        calls = []
        start = time.monotonic()
        sent = 0
        while time.monotonic() < until:
            due = int((time.monotonic() - start) * rate)
            while sent < due:
                calls.append(asyncio.create_task(one()))
                sent += 1
            await asyncio.sleep(0.002)
        await asyncio.gather(*calls)
        await prober
    return {
        "offered": sent,
        "offered_per_second": round(rate, 1),
        "capacity_per_second": round(capacity, 1),
        "statuses": dict(statuses),
        "refusal_ms_p50": round(percentile(refusal_ms, 0.5), 2),
        "refusal_ms_p99": round(percentile(refusal_ms, 0.99), 2),
        "answer_ms_p50": round(percentile(answer_ms, 0.5), 2),
        "answer_ms_p99": round(percentile(answer_ms, 0.99), 2),
        "health_ms_p50": round(statistics.median(health_ms), 2) if health_ms else None,
        "health_ms_p99": round(percentile(health_ms, 0.99), 2),
        "health_probes": len(health_ms),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--factor", type=float, default=10)
    parser.add_argument("--service-ms", type=float, default=50)
    parser.add_argument("--algora-cli", default=None)
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})  # the load on core 1; the server on core 0
    procs = serving.Processes()
    with tempfile.TemporaryDirectory(prefix="algora-overload-") as temp:
        tmp = Path(temp)
        try:
            cli = serving.algora_cli(args.algora_cli)
            server = serving.start_server(procs, tmp, cli, core="0")
            folder = tmp / "slow"
            folder.mkdir()
            (folder / "model.py").write_text(MODEL)
            (folder / "requirements.txt").write_text("")
            (folder / "algora.toml").write_text('[model]\nname = "slow"\n')
            serving.publish(cli, folder, server)
            base, key = server.base, server.key
            url = f"{base}/v1/algo/admin/slow"
            auth = f"Simple {key}"
            for _ in range(3):  # warm: the pool is up and its service time measured
                httpx.post(url, json=args.service_ms / 1000, headers={"Authorization": auth},
                           timeout=60)  # fmt: skip
            result = asyncio.run(offer(url, auth, args))
        finally:
            procs.stop_all()
    serving.report("overload", args, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
