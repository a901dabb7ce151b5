"""Algora against its peers, pinned and alternated: median ratios and their spread.

    .venv/bin/python benchmarks/pinned.py [--workload tiny|heavy] [--rounds 4] [--duration 10]
        [--concurrency 1,8,64] [--peers bentoml,mlserver-batch,...] [--also NAME=ALGORA_CLI ...]

The peers (``benchmarks/peers.py``: BentoML, MLServer, Ray Serve and ``mlflow models serve``,
with and without their batching) are installed once, each in its own virtual environment, and
serve the same model as the hand-written FastAPI app and Algora.

Every server's whole process tree (Algora's gateway, its model worker and audit writer; the
FastAPI app) runs on core 0 (``taskset -c 0``, inherited by every child); wrk runs on core 1.
All servers are started once and stay up; each round loads them one after another at each
concurrency, the order reversed every other round (A B, B A, ...), because this machine's speed
swings between minutes: a ratio is taken within a round, and the report gives each ratio's
median and its spread (min..max) over the rounds. ``--also before=/tmp/old/.venv/bin/algora``
adds another Algora (an older checkout, say) as one more system.

Per system, round and concurrency: requests/s, p50 and p99 (wrk), non-2xx answers, and the CPU
time the server's process tree spent per request (utime + stime from /proc, over the measured
window). Results go to benchmarks/results/pinned-<time>.json. Everything listens on 127.0.0.1;
every server is stopped by PID (see serving.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # this folder's peers
import serving  # this folder's shared helpers


@dataclass(frozen=True)
class Workload:
    folder: Path
    class_name: str
    body: Any
    check: str
    """A word the right answer contains."""


WORKLOADS = {
    "tiny": Workload(serving.IRIS, "IrisClassifier", serving.BODY, "setosa"),
    "heavy": Workload(
        Path(__file__).resolve().parent / "forest",
        "Forest",
        [round(0.1 * (i % 16) + 0.1, 1) for i in range(32)],
        "label",
    ),
}

SERVER_CORE = "0"
LOAD_CORE = "1"
BASELINE = "fastapi"


@dataclass
class System:
    name: str
    url: str
    auth: str | None
    pid: int
    body: Any = None
    """What this system is sent (None: the workload's body)."""
    check: str = ""
    """A word its right answer contains ("": the workload's)."""


@dataclass
class Point:
    system: str
    round: int
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    cpu_ms_per_request: float | None
    pss_mib: float | None = None


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc's children lists)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                children = (task / "children").read_text().split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            todo.extend(int(child) for child in children)
    return found


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of the process tree now, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in _tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / ticks


def _pss_mib(pid: int) -> float | None:
    """Proportional set size of the process tree, in MiB (shared pages split fairly)."""
    total = 0
    for member in _tree(pid):
        try:
            rollup = Path(f"/proc/{member}/smaps_rollup").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
    return total / 1024 if total else None


def peer_model(workload: Workload, folder: Path) -> peers.Model:
    """The prepared model as the peers get it: the class, and the bare fitted estimator."""
    estimator = folder / "estimator.joblib"
    program = (
        "import sys, joblib; a = joblib.load(sys.argv[1]); "
        "joblib.dump(a['model'] if isinstance(a, dict) else a, sys.argv[2])"
    )
    serving.subprocess.run(
        [sys.executable, "-c", program, str(folder / "model.joblib"), str(estimator)],
        check=True, timeout=300,
    )  # fmt: skip
    body = workload.body
    row = [float(body[k]) for k in serving.BODY] if isinstance(body, dict) else list(body)
    return peers.Model(folder, workload.class_name, estimator, body, row, workload.check)


def start_peer(
    name: str, procs: serving.Processes, tmp: Path, model: peers.Model, timeout: float
) -> System:
    print(f"  starting {name} ...", flush=True)
    target = peers.start(name, procs, tmp, model, SERVER_CORE, timeout)
    return System(name, target.url, None, target.pid, target.body, target.check)


def _pinned(argv: list[str], core: str) -> list[str]:
    return ["taskset", "-c", core, *argv]


def prepare(workload: Workload, tmp: Path) -> Path:
    """A copy of the workload's model folder with its artifact trained (``train.py``)."""
    folder = tmp / workload.folder.name
    shutil.copytree(workload.folder, folder, ignore=shutil.ignore_patterns("*.joblib"))
    build = serving.subprocess.run(
        [sys.executable, "train.py"], cwd=folder, capture_output=True, text=True, timeout=600
    )
    if build.returncode != 0:
        raise serving.BenchError(f"train.py failed:\n{build.stdout}\n{build.stderr}")
    return folder


def start_fastapi(
    procs: serving.Processes, tmp: Path, model_dir: Path, workload: Workload, timeout: float
) -> System:
    port = serving.free_port()
    log = tmp / "fastapi.log"
    argv = [
        sys.executable, str(serving.BASELINE_SERVER), "--model-dir", str(model_dir),
        "--class", workload.class_name,
    ]  # fmt: skip
    proc = procs.start(BASELINE, _pinned([*argv, "--port", str(port)], SERVER_CORE), log)
    serving.wait_http_ok(f"http://{serving.HOST}:{port}/healthz", proc, timeout, log)
    return System(BASELINE, f"http://{serving.HOST}:{port}/predict", None, proc.pid)


def start_algora(
    procs: serving.Processes,
    tmp: Path,
    name: str,
    cli: str,
    args: argparse.Namespace,
    workload: Workload,
) -> list[System]:
    server = serving.start_server(
        procs, tmp, cli, name=name, core=SERVER_CORE, timeout=args.startup_timeout
    )
    print(f"  {name}: publishing {workload.folder.name} ...", flush=True)
    serving.publish(cli, workload.folder, server, args.publish_timeout)
    base, key, proc = server.base, server.key, server.proc
    model = "iris" if workload.folder == serving.IRIS else workload.folder.name
    url = f"{base}/v1/algo/admin/{model}/latest"
    system = System(name, url, f"Simple {key}", proc.pid)
    if args.input_check_cost:
        unchecked = unchecked_copy(workload.folder, model, tmp)
        serving.publish(cli, unchecked, server, args.publish_timeout)
        url = f"{base}/v1/algo/admin/{unchecked.name}/latest"
        return [system, System(f"{name}-unchecked", url, system.auth, proc.pid)]
    return [system]


def unchecked_copy(folder: Path, model: str, tmp: Path) -> Path:
    """A copy of the model folder published as ``MODEL-unchecked`` with its input check off."""
    copy = tmp / f"{model}-unchecked"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("*.joblib"))
    manifest = copy / "algora.toml"
    text = manifest.read_text().replace(f'name = "{model}"', f'name = "{copy.name}"')
    if "[serving]" not in text:
        text += "\n[serving]\n"
    manifest.write_text(text.replace("[serving]\n", "[serving]\ncheck_inputs = false\n", 1))
    return copy


def check(system: System, workload: Workload, timeout: float) -> None:
    """Call until the first 200 (a pool may still be starting); check the answer."""
    headers = {"Authorization": system.auth} if system.auth else {}
    body = workload.body if system.body is None else system.body
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.post(system.url, json=body, headers=headers, timeout=timeout)
        if answer.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if answer.status_code != 200 or (system.check or workload.check) not in answer.text:
        raise serving.BenchError(f"{system.name} answered {answer.status_code}: {answer.text}")


def load(
    system: System,
    workload: Workload,
    concurrency: int,
    duration: float,
    round_: int,
    core: str | None = LOAD_CORE,
) -> Point:
    before = _cpu_seconds(system.pid)
    result = run_wrk_pinned(system, workload, concurrency, duration, core)
    spent = _cpu_seconds(system.pid) - before
    cpu = spent * 1000 / result.requests if result.requests else None
    return Point(
        system.name, round_, concurrency, result.rps, result.p50_ms, result.p99_ms,
        result.non_2xx + sum(result.socket_errors.values()), cpu, _pss_mib(system.pid),
    )  # fmt: skip


def run_wrk_pinned(
    system: System,
    workload: Workload,
    concurrency: int,
    duration: float,
    core: str | None = LOAD_CORE,
) -> serving.LoadResult:
    """wrk against ``system``, on ``core`` (None: wherever the kernel puts it)."""
    return serving.run_wrk(
        system.name, system.url, concurrency, duration, system.auth,
        body=workload.body if system.body is None else system.body, core=core,
    )  # fmt: skip


def best_peers(points: list[Point], peer_names: set[str], level: int) -> dict[int, Point]:
    """Per round: the peer that answered most requests/s at ``level``."""
    best: dict[int, Point] = {}
    for point in points:
        mine = point.system in peer_names and point.concurrency == level
        if (
            mine
            and not point.non_2xx
            and (point.round not in best or point.rps > best[point.round].rps)
        ):
            best[point.round] = point
    return best


def summarize(
    points: list[Point], systems: list[str], levels: list[int], peer_names: set[str]
) -> list[dict[str, Any]]:
    """Per system and concurrency: medians, the ratio to the baseline within each round and,
    for Algora's systems, to the best peer of each round (requests/s and p99)."""
    rows = []
    for name in systems:
        for level in levels:
            mine = [p for p in points if p.system == name and p.concurrency == level]
            base = {p.round: p for p in points if p.system == BASELINE and p.concurrency == level}
            ratios = [p.rps / base[p.round].rps for p in mine if p.round in base]
            p50_gaps = [p.p50_ms - base[p.round].p50_ms for p in mine if p.round in base]
            cpus = [p.cpu_ms_per_request for p in mine if p.cpu_ms_per_request is not None]
            best = best_peers(points, peer_names, level) if name not in peer_names else {}
            vs_best = [p.rps / best[p.round].rps for p in mine if p.round in best]
            p99_vs_best = [p.p99_ms / best[p.round].p99_ms for p in mine if p.round in best]
            psses = [p.pss_mib for p in mine if p.pss_mib is not None]
            rows.append({
                "best_peer": sorted({best[r].system for r in best}),
                "vs_best_peer_median": statistics.median(vs_best) if vs_best else None,
                "vs_best_peer_min": min(vs_best) if vs_best else None,
                "vs_best_peer_max": max(vs_best) if vs_best else None,
                "p99_over_best_peer_p99_median": (
                    statistics.median(p99_vs_best) if p99_vs_best else None
                ),
                "pss_mib": statistics.median(psses) if psses else None,
                "system": name,
                "concurrency": level,
                "rps": statistics.median(p.rps for p in mine),
                "p50_ms": statistics.median(p.p50_ms for p in mine),
                "p99_ms": statistics.median(p.p99_ms for p in mine),
                "cpu_ms_per_request": statistics.median(cpus) if cpus else None,
                "non_2xx": sum(p.non_2xx for p in mine),
                "ratio_median": statistics.median(ratios) if ratios else None,
                "ratio_min": min(ratios) if ratios else None,
                "ratio_max": max(ratios) if ratios else None,
                "p50_gap_ms_median": statistics.median(p50_gaps) if p50_gaps else None,
            })  # fmt: skip
    return rows


def print_rows(rows: list[dict[str, Any]], rounds: int) -> None:
    for row in rows:
        if row["vs_best_peer_median"] is not None:
            print(
                f"{row['system']} c={row['concurrency']}: {row['vs_best_peer_median']:.2f}x the "
                f"best peer's req/s ({row['vs_best_peer_min']:.2f}..{row['vs_best_peer_max']:.2f}"
                f"; best: {', '.join(row['best_peer'])}), p99 "
                f"{row['p99_over_best_peer_p99_median']:.2f}x the best peer's"
            )
    print(f"\nmedians over {rounds} rounds; ratio = req/s over {BASELINE}'s in the same round")
    print(
        f"{'system':14} {'c':>3} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/req':>10} "
        f"{'ratio':>6} {'spread':>13} {'p50 gap':>8} {'PSS MiB':>8}"
    )
    for row in rows:
        ratio = f"{row['ratio_median']:.2f}" if row["ratio_median"] is not None else "-"
        spread = (
            f"{row['ratio_min']:.2f}..{row['ratio_max']:.2f}"
            if row["ratio_min"] is not None
            else "-"
        )
        cpu = f"{row['cpu_ms_per_request']:.3f}" if row["cpu_ms_per_request"] else "-"
        gap = f"{row['p50_gap_ms_median']:+.2f}" if row["p50_gap_ms_median"] is not None else "-"
        flag = f"  (!) {row['non_2xx']} non-2xx" if row["non_2xx"] else ""
        print(
            f"{row['system']:14} {row['concurrency']:>3} {row['rps']:9.1f} {row['p50_ms']:8.2f} "
            f"{row['p99_ms']:8.2f} {cpu:>10} {ratio:>6} {spread:>13} {gap:>8} "
            f"{row['pss_mib'] or 0:8.0f}{flag}"
        )


def run_arguments(
    doc: str, workloads: list[str], rounds: int, levels: list[int]
) -> argparse.ArgumentParser:
    """The options every alternated run takes (this one's and ``cores.py``'s)."""
    parser = argparse.ArgumentParser(description=doc.split("\n", 1)[0])
    parser.add_argument("--workload", choices=workloads, default="tiny")
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=3, help="unrecorded seconds per system")
    parser.add_argument(
        "--concurrency", type=lambda text: [int(c) for c in text.split(",")], default=levels
    )
    parser.add_argument("--algora-cli", default=None, help="default: algora next to this Python")
    parser.add_argument("--startup-timeout", type=float, default=120)
    parser.add_argument("--publish-timeout", type=float, default=900)
    return parser


def main() -> int:
    parser = run_arguments(__doc__ or "", sorted(WORKLOADS), 4, [1, 8, 64])
    parser.add_argument("--also", action="append", default=[], help="NAME=ALGORA_CLI, repeatable")
    parser.add_argument(
        "--peers",
        type=lambda text: [name for name in text.split(",") if name],
        default=list(peers.PEERS),
        help=f"comma-separated, from {','.join(peers.PEERS)} (default: all; '' for none)",
    )
    parser.add_argument(
        "--input-check-cost",
        action="store_true",
        help="also load a copy of the model with serving.check_inputs = false, on each Algora",
    )
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        print("pinning needs two cores: this machine gives fewer", file=sys.stderr)
        return 2
    procs = serving.Processes()
    points: list[Point] = []
    with tempfile.TemporaryDirectory(prefix="algora-pinned-") as temp:
        tmp = Path(temp)
        try:
            workload = WORKLOADS[args.workload]
            model_dir = prepare(workload, tmp)
            systems = [start_fastapi(procs, tmp, model_dir, workload, args.startup_timeout)]
            if args.peers:
                model = peer_model(workload, model_dir)
                for peer in args.peers:
                    systems.append(start_peer(peer, procs, tmp, model, args.startup_timeout))
            cli = serving.algora_cli(args.algora_cli)
            systems += start_algora(procs, tmp, "algora", cli, args, workload)
            for extra in args.also:
                name, _, cli = extra.partition("=")
                systems += start_algora(procs, tmp, name, cli, args, workload)
            for system in systems:
                check(system, workload, args.startup_timeout)
                run_wrk_pinned(system, workload, max(args.concurrency), args.warmup)
            for round_ in range(args.rounds):
                order = systems if round_ % 2 == 0 else list(reversed(systems))
                for system in order:
                    for level in args.concurrency:
                        point = load(system, workload, level, args.duration, round_)
                        points.append(point)
                        print(
                            f"  round {round_} {system.name:12} c={level:<3} "
                            f"{point.rps:9.1f} req/s  p50 {point.p50_ms:7.2f}  "
                            f"p99 {point.p99_ms:7.2f}  "
                            f"cpu/req {point.cpu_ms_per_request or 0:.3f} ms",
                            flush=True,
                        )
        finally:
            procs.stop_all()
    names = [s.name for s in systems]
    rows = summarize(points, names, args.concurrency, {BASELINE, *args.peers})
    print_rows(rows, args.rounds)
    serving.RESULTS_DIR.mkdir(exist_ok=True)
    out = serving.RESULTS_DIR / f"pinned-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({
        "args": vars(args), "points": [asdict(p) for p in points], "summary": rows,
    }, indent=2))  # fmt: skip
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
