"""What monitoring costs: the tiny model's throughput with metrics on and payload sampling at
1 %, against both off, in one run.

    .venv/bin/python benchmarks/monitoring_cost.py [--rounds 3] [--duration 10]
        [--concurrency 8,64] [--workload tiny|hello] [--rate 0.01]

Two servers run side by side, each publishing the same model: ``monitored`` (the defaults:
``ALGORA_METRICS_ENABLED=true``, then ``algora sampling set MODEL --rate 0.01``) and ``bare``
(``ALGORA_METRICS_ENABLED=false``, no sampling rule). Each server's whole process tree
(gateway, model worker, audit writer) runs on core 0 (``taskset -c 0``) and wrk on core 1, as
in ``pinned.py``. The rounds alternate the order (monitored, bare; bare, monitored; ...),
because this machine's speed swings between minutes: the ratio monitored/bare is taken within
a round, and the report gives its median and spread (min..max) per concurrency. The issue's
target: the cost (1 - the median ratio) stays under 5 %. After the run it checks that the
monitored server stored samples (``algora_samples_stored`` in its ``/metrics``) and counted
the calls. Results go to benchmarks/results/monitoring-cost-<time>.json. Everything listens
on 127.0.0.1; every server is stopped by PID (see serving.py).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pinned  # this folder's pinned runs: workloads, points, CPU of a process tree
import serving  # this folder's shared helpers

HELLO = pinned.Workload(serving.REPO / "examples" / "hello", "", "world", "Hello world")
WORKLOADS = {"tiny": pinned.WORKLOADS["tiny"], "hello": HELLO}
SYSTEMS = {"monitored": "true", "bare": "false"}
"""Name: its ALGORA_METRICS_ENABLED (the monitored one also samples)."""


def start(
    procs: serving.Processes, tmp: Path, cli: str, name: str, args: Any
) -> tuple[pinned.System, serving.Served]:
    print(f"  starting {name} on core {pinned.SERVER_CORE} ...", flush=True)
    server = serving.start_server(
        procs, tmp, cli, name=name, core=pinned.SERVER_CORE, timeout=args.startup_timeout,
        env={"ALGORA_METRICS_ENABLED": SYSTEMS[name]},
    )  # fmt: skip
    serving.publish(cli, args.model_folder, server, args.publish_timeout)
    model = f"admin/{args.model_name}"
    if name == "monitored":
        done = subprocess.run(
            [cli, "sampling", "set", model, "--rate", str(args.rate), "--url", server.base,
             "--key", server.key],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise serving.BenchError(f"sampling set failed:\n{done.stdout}\n{done.stderr}")
    workload: pinned.Workload = WORKLOADS[args.workload]
    url = f"{server.base}/v1/algo/{model}/latest"
    return pinned.System(name, url, f"Simple {server.key}", server.proc.pid, workload.body), server


def summarize(points: list[pinned.Point], levels: list[int]) -> list[dict[str, Any]]:
    """Per concurrency: monitored's requests/s over bare's within each round."""
    rows = []
    for level in levels:
        at = [p for p in points if p.concurrency == level]
        on = {p.round: p for p in at if p.system == "monitored"}
        off = {p.round: p for p in at if p.system == "bare"}
        ratios = [on[r].rps / off[r].rps for r in sorted(on) if r in off and off[r].rps]
        rows.append({
            "concurrency": level,
            "monitored_rps": statistics.median(p.rps for p in on.values()),
            "bare_rps": statistics.median(p.rps for p in off.values()),
            "ratio_median": statistics.median(ratios) if ratios else None,
            "ratio_min": min(ratios) if ratios else None,
            "ratio_max": max(ratios) if ratios else None,
            "non_2xx": sum(p.non_2xx for p in at),
        })  # fmt: skip
    return rows


def monitored_counts(server: serving.Served) -> dict[str, float]:
    """What the monitored server's /metrics says it sampled and counted."""
    text = httpx.get(
        f"{server.base}/metrics", headers={"Authorization": f"Simple {server.key}"}, timeout=30
    ).text
    counts: dict[str, float] = {}
    for line in text.splitlines():
        for name in ("algora_samples_stored_total", "algora_samples_dropped_total"):
            if line.startswith(name + " "):
                counts[name] = float(line.split()[1])
        if line.startswith("algora_model_calls_total{"):
            counts["model_calls"] = counts.get("model_calls", 0.0) + float(line.split()[-1])
    return counts


def main() -> int:
    parser = pinned.run_arguments(__doc__ or "", sorted(WORKLOADS), 3, [8, 64])
    parser.add_argument("--rate", type=float, default=0.01, help="the monitored sampling rate")
    args = parser.parse_args()
    workload = WORKLOADS[args.workload]
    procs = serving.Processes()
    points: list[pinned.Point] = []
    counts: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="algora-monitoring-") as temp:
        tmp = Path(temp)
        try:
            args.model_folder = (
                pinned.prepare(workload, tmp) if workload is not HELLO else workload.folder
            )
            args.model_name = "iris" if workload is not HELLO else "hello"
            cli = serving.algora_cli(args.algora_cli)
            started = [start(procs, tmp, cli, name, args) for name in SYSTEMS]
            systems = [system for system, _server in started]
            for system in systems:
                pinned.check(system, workload, args.startup_timeout)
                pinned.run_wrk_pinned(system, workload, max(args.concurrency), args.warmup)
            for round_ in range(args.rounds):
                for system in systems if round_ % 2 == 0 else list(reversed(systems)):
                    for level in args.concurrency:
                        point = pinned.load(system, workload, level, args.duration, round_)
                        points.append(point)
                        print(
                            f"  round {round_} {system.name:9} c={level:<3} {point.rps:9.1f} "
                            f"req/s  p50 {point.p50_ms:7.2f}  p99 {point.p99_ms:7.2f}",
                            flush=True,
                        )
            time.sleep(6)  # the samples drawn last are written within a few seconds
            counts = monitored_counts(started[0][1])
        finally:
            procs.stop_all()
    rows = summarize(points, args.concurrency)
    for row in rows:
        cost = 1 - row["ratio_median"] if row["ratio_median"] is not None else float("nan")
        print(
            f"c={row['concurrency']}: monitored/bare {row['ratio_median']:.3f}x "
            f"({row['ratio_min']:.3f}..{row['ratio_max']:.3f}) over {args.rounds} rounds; "
            f"cost {cost:.1%}; {row['bare_rps']:.0f} -> {row['monitored_rps']:.0f} req/s"
            + (f"  (!) {row['non_2xx']} non-2xx" if row["non_2xx"] else "")
        )
    print(f"monitored server: {counts}")
    serving.RESULTS_DIR.mkdir(exist_ok=True)
    out = serving.RESULTS_DIR / f"monitoring-cost-{time.strftime('%Y%m%d-%H%M%S')}.json"
    saved = {**vars(args), "model_folder": str(args.model_folder)}
    out.write_text(json.dumps({
        "args": saved, "points": [asdict(p) for p in points], "summary": rows, "counts": counts,
    }, indent=2))  # fmt: skip
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
