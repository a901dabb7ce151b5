"""Both cores against one: ``algora serve --workers 2`` on cores 0-1 over ``--workers 1`` on core 0.

    .venv/bin/python benchmarks/cores.py [--workload tiny|hello] [--rounds 6] [--duration 10]
        [--concurrency 64]

Two servers run side by side, each publishing the same model: ``one`` (``--workers 1``, its
whole process tree pinned to core 0 by ``taskset -c 0``: gateway, model worker, audit writer)
and ``both`` (``--workers 2``, its tree pinned to cores 0 and 1). wrk is **not pinned**: pinned
to a core of its own it would take that core from ``both``, so it runs wherever the kernel puts
it, against either server alike. The rounds alternate the order (one, both; both, one; ...),
because this machine's speed swings between minutes: the ratio both/one is taken within a round,
and the report gives its median and spread (min..max) over the rounds. The issue's target is a
median of at least 1.7 at c=64 with the ``tiny`` workload (the iris logistic regression).

``--workload hello`` (the stdlib-only example) needs no scikit-learn and checks the script
quickly. Results go to benchmarks/results/cores-<time>.json. Everything listens on 127.0.0.1;
every server is stopped by PID (see serving.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pinned  # this folder's pinned runs: workloads, points, CPU and PSS of a process tree
import serving  # this folder's shared helpers

HELLO = pinned.Workload(serving.REPO / "examples" / "hello", "", "world", "Hello world")
WORKLOADS = {"tiny": pinned.WORKLOADS["tiny"], "hello": HELLO}
SYSTEMS = {"one": ("0", 1), "both": ("0,1", 2)}
"""Name: (the cores its process tree may use, its --workers)."""


def start(
    procs: serving.Processes, tmp: Path, cli: str, name: str, args: argparse.Namespace
) -> pinned.System:
    cores, workers = SYSTEMS[name]
    print(f"  starting {name}: --workers {workers} on cores {cores} ...", flush=True)
    server = serving.start_server(
        procs, tmp, cli, name=name, core=cores, timeout=args.startup_timeout,
        args=("--workers", str(workers)),
    )  # fmt: skip
    workload: pinned.Workload = WORKLOADS[args.workload]
    serving.publish(cli, args.model_folder, server, args.publish_timeout)
    url = f"{server.base}/v1/algo/admin/{args.model_folder.name}/latest"
    return pinned.System(name, url, f"Simple {server.key}", server.proc.pid, workload.body)


def summarize(points: list[pinned.Point], levels: list[int]) -> list[dict[str, Any]]:
    """Per concurrency: both's requests/s over one's within each round, median and spread."""
    rows = []
    for level in levels:
        at = [p for p in points if p.concurrency == level]
        one = {p.round: p for p in at if p.system == "one"}
        both = {p.round: p for p in at if p.system == "both"}
        ratios = [both[r].rps / one[r].rps for r in sorted(both) if r in one and one[r].rps]
        rows.append({
            "concurrency": level,
            "one_rps": statistics.median(p.rps for p in one.values()),
            "both_rps": statistics.median(p.rps for p in both.values()),
            "one_p99_ms": statistics.median(p.p99_ms for p in one.values()),
            "both_p99_ms": statistics.median(p.p99_ms for p in both.values()),
            "ratio_median": statistics.median(ratios) if ratios else None,
            "ratio_min": min(ratios) if ratios else None,
            "ratio_max": max(ratios) if ratios else None,
            "non_2xx": sum(p.non_2xx for p in at),
        })  # fmt: skip
    return rows


def main() -> int:
    parser = pinned.run_arguments(__doc__ or "", sorted(WORKLOADS), 6, [64])
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        print("both cores against one needs two cores: this machine gives fewer", file=sys.stderr)
        return 2
    workload = WORKLOADS[args.workload]
    procs = serving.Processes()
    points: list[pinned.Point] = []
    with tempfile.TemporaryDirectory(prefix="algora-cores-") as temp:
        tmp = Path(temp)
        try:
            args.model_folder = (
                pinned.prepare(workload, tmp) if workload is not HELLO else workload.folder
            )
            cli = serving.algora_cli(args.algora_cli)
            systems = [start(procs, tmp, cli, name, args) for name in SYSTEMS]
            for system in systems:
                pinned.check(system, workload, args.startup_timeout)
                pinned.run_wrk_pinned(system, workload, max(args.concurrency), args.warmup, None)
            for round_ in range(args.rounds):
                for system in systems if round_ % 2 == 0 else list(reversed(systems)):
                    for level in args.concurrency:
                        point = pinned.load(
                            system, workload, level, args.duration, round_, core=None
                        )
                        points.append(point)
                        print(
                            f"  round {round_} {system.name:5} c={level:<3} {point.rps:9.1f} "
                            f"req/s  p50 {point.p50_ms:7.2f}  p99 {point.p99_ms:7.2f}",
                            flush=True,
                        )
        finally:
            procs.stop_all()
    rows = summarize(points, args.concurrency)
    for row in rows:
        print(
            f"c={row['concurrency']}: both/one {row['ratio_median']:.2f}x "
            f"({row['ratio_min']:.2f}..{row['ratio_max']:.2f}) over {args.rounds} rounds; "
            f"{row['one_rps']:.0f} -> {row['both_rps']:.0f} req/s, p99 "
            f"{row['one_p99_ms']:.1f} -> {row['both_p99_ms']:.1f} ms"
            + (f"  (!) {row['non_2xx']} non-2xx" if row["non_2xx"] else "")
        )
    serving.RESULTS_DIR.mkdir(exist_ok=True)
    out = serving.RESULTS_DIR / f"cores-{time.strftime('%Y%m%d-%H%M%S')}.json"
    saved = {**vars(args), "model_folder": str(args.model_folder)}
    out.write_text(json.dumps({
        "args": saved, "points": [asdict(p) for p in points], "summary": rows,
    }, indent=2))  # fmt: skip
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
