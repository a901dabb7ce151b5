"""What the audit log costs: the hello model's throughput with the audit log on and off.

    .venv/bin/python benchmarks/audit_cost.py [--duration 10] [--concurrency 8,64] [--rounds 2]

In one run: ``algora serve`` on a temporary data dir, ``algora publish examples/hello``, then for
each round the same server settings twice, audit off (``ALGORA_AUDIT_ENABLED=false``) and on,
each loaded with wrk (benchmarks/post.lua) on ``POST /v1/algo/admin/hello/latest`` at every
concurrency. The two variants alternate (off, on, on, off, ...) so that drift hits both alike.
It prints req/s both ways and the ratio, checks that the audit chain verifies and holds a row
for every answered call, and writes benchmarks/results/audit-cost-<time>.json. Servers are
stopped by PID (helpers shared with serving.py); everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving import (  # a sibling script, not a package
    HOST,
    LUA,
    REPO,
    RESULTS_DIR,
    BenchError,
    Processes,
    algora_cli,
    free_port,
    log_tail,
    parse_wrk,
    wait_http_ok,
    workspace,
)

HELLO = REPO / "examples" / "hello"
BODY = json.dumps("world")


def wrk(url: str, auth: str, concurrency: int, duration: float) -> dict[str, Any]:
    threads = 2 if concurrency >= 64 else 1
    argv = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{duration:g}s", "--timeout", "10s"]
    argv += ["--latency", "-s", str(LUA), url]
    env = {**os.environ, "WRK_BODY": BODY, "WRK_AUTH": auth}
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=duration + 60, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"wrk exited with {done.returncode}:\n{done.stdout}\n{done.stderr}")
    parsed = parse_wrk(done.stdout)
    clean = parsed["non_2xx"] == 0 and not any(parsed["socket_errors"].values())
    return {
        "concurrency": concurrency,
        "rps": parsed["rps"],
        "requests": parsed["requests"],
        "p50_ms": parsed["p50_ms"],
        "p99_ms": parsed["p99_ms"],
        "clean": clean,
    }


class EnvProcesses(Processes):
    def start_env(
        self, argv: list[str], log: Path, extra_env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        handle = log.open("wb")
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env={**os.environ, **extra_env},
                start_new_session=True,
            )
        finally:
            handle.close()
        self.procs.append(("algora", proc))
        return proc


class Server:
    """``algora serve`` on the shared data dir, with or without the audit log."""

    def __init__(self, procs: EnvProcesses, cli: str, data_dir: Path, tmp: Path) -> None:
        self.procs, self.cli, self.data_dir, self.tmp = procs, cli, data_dir, tmp
        self.runs = 0

    def start(self, audit: bool, timeout: float) -> tuple[str, subprocess.Popen[bytes], Path]:
        port = free_port()
        self.runs += 1
        log = self.tmp / f"serve-{self.runs}-audit-{'on' if audit else 'off'}.log"
        argv = [self.cli, "serve", "--data-dir", str(self.data_dir), "--port", str(port)]
        argv += ["--host", HOST]
        env_flag = "true" if audit else "false"
        proc = self.procs.start_env(argv, log, {"ALGORA_AUDIT_ENABLED": env_flag})
        base = f"http://{HOST}:{port}"
        wait_http_ok(f"{base}/readyz", proc, timeout, log)
        return base, proc, log


def first_call(url: str, auth: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        response = httpx.post(
            url,
            content=BODY,
            headers={"Authorization": auth, "Content-Type": "application/json"},
            timeout=60,
        )
        if response.status_code == 200 and response.json().get("result") == "Hello world":
            return
        last = f"HTTP {response.status_code}: {response.text[:300]}"
        time.sleep(0.5)
    raise BenchError(f"no good answer from {url}: {last}")


def measure(
    server: Server, audit: bool, key: str, args: argparse.Namespace
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    base, proc, log = server.start(audit, args.startup_timeout)
    try:
        auth = f"Simple {key}"
        url = f"{base}/v1/algo/admin/hello/latest"
        first_call(url, auth, args.startup_timeout)
        if args.warmup > 0:
            wrk(url, auth, max(args.concurrency), args.warmup)
        results = [wrk(url, auth, c, args.duration) for c in args.concurrency]
        for r in results:
            print(
                f"  audit {'on ' if audit else 'off'} c={r['concurrency']:<3} "
                f"{r['rps']:8.1f} req/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:7.2f} ms"
                + ("" if r["clean"] else "  (!) errors"),
                flush=True,
            )
        chain = None
        if audit:
            chain = httpx.get(
                f"{base}/api/v1/audit/verify", headers={"Authorization": auth}, timeout=300
            ).json()
        return results, chain
    except BaseException:
        print(log_tail(log, 40), file=sys.stderr)
        raise
    finally:
        server.procs.stop(proc)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",") if x.strip()],
        default=[8, 64],
        help="comma-separated connection counts (default 8,64)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs (default 2)")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of unrecorded load")
    parser.add_argument("--startup-timeout", type=float, default=120)
    parser.add_argument("--publish-timeout", type=float, default=600)
    parser.add_argument("--algora-cli", help="the algora command (default: next to this Python)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    args = parser.parse_args(argv)
    if not args.concurrency or min(args.concurrency) < 1 or args.duration <= 0 or args.rounds < 1:
        parser.error("need a positive duration, rounds >= 1 and concurrency levels >= 1")
    return args


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace, procs: EnvProcesses, tmp: Path) -> dict[str, Any]:
    cli = algora_cli(args.algora_cli)
    data_dir = tmp / "algora-data"
    server = Server(procs, cli, data_dir, tmp)
    base, proc, log = server.start(True, args.startup_timeout)
    try:
        key = (data_dir / "admin.key").read_text().strip()
        print(f"publishing {HELLO.relative_to(REPO)} ...", flush=True)
        publish = subprocess.run(
            [cli, "publish", str(HELLO), "--url", base, "--key", key],
            capture_output=True,
            text=True,
            timeout=args.publish_timeout,
            check=False,
        )
        if publish.returncode != 0:
            output = f"{publish.stdout}\n{publish.stderr}\n{log_tail(log)}"
            raise BenchError(f"publish failed:\n{output}")
    finally:
        procs.stop(proc)
    runs: dict[str, list[list[dict[str, Any]]]] = {"off": [], "on": []}
    chains = []
    for round_no in range(args.rounds):
        order = (False, True) if round_no % 2 == 0 else (True, False)
        for audit in order:
            results, chain = measure(server, audit, key, args)
            runs["on" if audit else "off"].append(results)
            if chain is not None:
                chains.append(chain)
    summary = []
    for index, concurrency in enumerate(args.concurrency):
        off = statistics.fmean(r[index]["rps"] for r in runs["off"])
        on = statistics.fmean(r[index]["rps"] for r in runs["on"])
        # Each round's own ratio shows the run-to-run spread that the mean hides.
        per_round = [
            round(on_run[index]["rps"] / off_run[index]["rps"], 3)
            for on_run, off_run in zip(runs["on"], runs["off"], strict=True)
        ]
        summary.append(
            {
                "concurrency": concurrency,
                "off_rps": off,
                "on_rps": on,
                "ratio": on / off,
                "round_ratios": per_round,
            }
        )
    return {"runs": runs, "chains": chains, "summary": summary}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _raise_interrupt)
    procs = EnvProcesses()
    try:
        with workspace(args.keep) as tmp:
            try:
                report = run(args, procs, tmp)
            finally:
                procs.stop_all()
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped, no results written", file=sys.stderr)
        return 130
    except (BenchError, OSError, subprocess.SubprocessError, httpx.HTTPError) as error:
        print(f"failed: {error}", file=sys.stderr)
        return 1
    print("\nconc  audit off req/s  audit on req/s  on/off  by round")
    for row in report["summary"]:
        rounds = " ".join(f"{ratio:.3f}" for ratio in row["round_ratios"])
        print(
            f"{row['concurrency']:>4}  {row['off_rps']:15.1f}  {row['on_rps']:14.1f}  "
            f"{row['ratio']:6.3f}  {rounds}"
        )
    for chain in report["chains"]:
        state = "intact" if chain.get("ok") else f"BROKEN: {chain.get('message')}"
        print(f"audit chain after an audited run: {chain.get('rows')} rows, {state}")
    report["config"] = vars(args) | {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    report["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"audit-cost-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {out.relative_to(REPO)}")
    return 0 if all(c.get("ok") for c in report["chains"]) else 1


if __name__ == "__main__":
    sys.exit(main())
