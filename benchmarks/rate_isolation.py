"""Rate-limit isolation: does a caller far past its limit slow down a well-behaved one?

    .venv/bin/python benchmarks/rate_isolation.py [--limit 20] [--factor 5] [--quiet-rate 100]
        [--duration 15] [--rounds 3]

In one run: ``algora serve`` on a temporary data dir, ``algora publish examples/hello``, two
new keys: "noisy", limited to LIMIT calls/s (burst LIMIT), and "quiet", unlimited. Then, in
alternating phases on the same server (alone, noisy, noisy, alone, ...), wrk
(benchmarks/paced.lua) sends quiet's calls at a steady QUIET_RATE/s and records their
latency; in the "noisy" phases a second wrk sends noisy's calls at FACTOR times its limit, so
most of them are refused with 429. A third phase kind, "at limit", sends noisy's calls at
exactly its limit (all admitted) to separate the cost of the admitted calls from that of the
refusals. It prints quiet's p50/p99 per phase, the ratio of quiet's p99 with the noisy caller
to without (the target: at most 1.10), and writes benchmarks/results/rate-isolation-<time>.json.
Servers are stopped by PID (helpers shared with serving.py); everything listens on 127.0.0.1.
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
    HERE,
    HOST,
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
PACED = HERE / "paced.lua"
BODY = json.dumps("world")
QUIET_CONNECTIONS = 2
NOISY_CONNECTIONS = 4


def paced_wrk(
    url: str, auth: str, rate: float, connections: int, duration: float
) -> subprocess.Popen[str]:
    """wrk sending about ``rate`` calls/s over ``connections`` paced connections."""
    delay_ms = max(0, round(connections * 1000 / rate))
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s"]
    argv += ["--latency", "-s", str(PACED), url]
    env = {**os.environ, "WRK_BODY": BODY, "WRK_AUTH": auth, "WRK_DELAY_MS": str(delay_ms)}
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def finish(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise BenchError("wrk ran past its time") from None
    if proc.returncode != 0:
        raise BenchError(f"wrk exited with {proc.returncode}:\n{out}\n{err}")
    return parse_wrk(out)


def phase(kind: str, url: str, keys: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    """Quiet's latency for one phase; noisy runs from before quiet starts until after."""
    noisy = None
    noisy_rate = {"alone": 0.0, "at_limit": args.limit, "noisy": args.limit * args.factor}[kind]
    if noisy_rate:
        noisy = paced_wrk(
            url, keys["noisy"], noisy_rate, NOISY_CONNECTIONS, args.duration + 2 * args.lead
        )
        time.sleep(args.lead)
    quiet = paced_wrk(url, keys["quiet"], args.quiet_rate, QUIET_CONNECTIONS, args.duration)
    quiet_result = finish(quiet, args.duration + 60)
    noisy_result = finish(noisy, args.duration + 60) if noisy is not None else None
    row: dict[str, Any] = {
        "phase": kind,
        "quiet_rps": quiet_result["rps"],
        "quiet_requests": quiet_result["requests"],
        "quiet_p50_ms": quiet_result["p50_ms"],
        "quiet_p99_ms": quiet_result["p99_ms"],
        "quiet_non_2xx": quiet_result["non_2xx"],
    }
    if noisy_result is not None:
        row |= {
            "noisy_rps": noisy_result["rps"],
            "noisy_refused": noisy_result["non_2xx"],
            "noisy_requests": noisy_result["requests"],
            "noisy_p99_ms": noisy_result["p99_ms"],
        }
    extra = ""
    if noisy_result is not None:
        extra = (
            f"  noisy {row['noisy_rps']:6.1f} req/s "
            f"({row['noisy_refused']}/{row['noisy_requests']} refused)"
        )
    print(
        f"  {kind:8}  quiet {row['quiet_rps']:6.1f} req/s  p50 {row['quiet_p50_ms']:6.2f} ms  "
        f"p99 {row['quiet_p99_ms']:6.2f} ms{extra}",
        flush=True,
    )
    return row


def setup_keys(base: str, admin: str, limit: float) -> dict[str, str]:
    headers = {"Authorization": f"Simple {admin}"}
    keys: dict[str, str] = {}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        for name in ("noisy", "quiet"):
            created = http.post("/api/v1/keys", json={"name": name})
            if created.status_code != 201:
                raise BenchError(f"creating a key: HTTP {created.status_code} {created.text}")
            keys[name] = f"Simple {created.json()['key']}"
            if name == "noisy":
                patch = {"rate_per_second": limit, "burst": max(1, round(limit))}
                limited = http.patch(f"/api/v1/keys/{created.json()['key_id']}", json=patch)
                if limited.status_code != 200:
                    raise BenchError(f"limiting: HTTP {limited.status_code} {limited.text}")
    return keys


def warm(url: str, auth: str, timeout: float) -> None:
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


def run(args: argparse.Namespace, procs: Processes, tmp: Path) -> dict[str, Any]:
    cli = algora_cli(args.algora_cli)
    data_dir = tmp / "algora-data"
    port = free_port()
    base = f"http://{HOST}:{port}"
    log = tmp / "serve.log"
    argv = [cli, "serve", "--data-dir", str(data_dir), "--port", str(port), "--host", HOST]
    proc = procs.start("algora", argv, log)
    try:
        wait_http_ok(f"{base}/readyz", proc, args.startup_timeout, log)
        admin = (data_dir / "admin.key").read_text().strip()
        print(f"publishing {HELLO.relative_to(REPO)} ...", flush=True)
        publish = subprocess.run(
            [cli, "publish", str(HELLO), "--url", base, "--key", admin],
            capture_output=True,
            text=True,
            timeout=args.publish_timeout,
            check=False,
        )
        if publish.returncode != 0:
            raise BenchError(f"publish failed:\n{publish.stdout}\n{publish.stderr}")
        keys = setup_keys(base, admin, args.limit)
        url = f"{base}/v1/algo/admin/hello/latest"
        warm(url, keys["quiet"], args.startup_timeout)
        warmup = paced_wrk(url, keys["quiet"], args.quiet_rate, QUIET_CONNECTIONS, args.warmup)
        finish(warmup, args.warmup + 60)
        print(
            f"quiet at {args.quiet_rate:g}/s; noisy limited to {args.limit:g}/s, sent at "
            f"{args.factor:g}x in 'noisy' phases and 1x in 'at_limit' phases",
            flush=True,
        )
        rows = []
        for round_no in range(args.rounds):
            order = ("alone", "noisy", "at_limit")
            if round_no % 2:
                order = ("at_limit", "noisy", "alone")
            rows += [phase(kind, url, keys, args) for kind in order]
        return {"phases": rows}
    except BaseException:
        print(log_tail(log, 40), file=sys.stderr)
        raise
    finally:
        procs.stop(proc)


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def mean(kind: str, field: str) -> float:
        return statistics.fmean(r[field] for r in rows if r["phase"] == kind)

    alone, noisy, at_limit = (mean(k, "quiet_p99_ms") for k in ("alone", "noisy", "at_limit"))
    return {
        "quiet_p99_alone_ms": alone,
        "quiet_p99_noisy_ms": noisy,
        "quiet_p99_at_limit_ms": at_limit,
        "quiet_p50_alone_ms": mean("alone", "quiet_p50_ms"),
        "quiet_p50_noisy_ms": mean("noisy", "quiet_p50_ms"),
        "p99_ratio_noisy_vs_alone": noisy / alone,
        "p99_ratio_noisy_vs_at_limit": noisy / at_limit,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=float, default=20, help="noisy's limit, calls/s")
    parser.add_argument("--factor", type=float, default=5, help="noisy sends this x its limit")
    parser.add_argument(
        "--quiet-rate", type=float, default=100, help="quiet's calls/s (enough samples for a p99)"
    )
    parser.add_argument("--duration", type=float, default=15, help="seconds per phase")
    parser.add_argument("--rounds", type=int, default=3, help="phase triples (default 3)")
    parser.add_argument("--lead", type=float, default=1, help="noisy starts this much earlier")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of unrecorded load")
    parser.add_argument("--startup-timeout", type=float, default=120)
    parser.add_argument("--publish-timeout", type=float, default=600)
    parser.add_argument("--algora-cli", help="the algora command (default: next to this Python)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    args = parser.parse_args(argv)
    if min(args.limit, args.factor, args.quiet_rate, args.duration) <= 0 or args.rounds < 1:
        parser.error("need positive rates, factor and duration, and rounds >= 1")
    return args


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _raise_interrupt)
    procs = Processes()
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
    summary = report["summary"] = summarize(report["phases"])
    print(
        f"\nquiet p99: alone {summary['quiet_p99_alone_ms']:.2f} ms, noisy caller at "
        f"{args.factor:g}x its limit {summary['quiet_p99_noisy_ms']:.2f} ms, "
        f"noisy at its limit {summary['quiet_p99_at_limit_ms']:.2f} ms"
    )
    print(
        f"ratio noisy/alone {summary['p99_ratio_noisy_vs_alone']:.3f} (target <= 1.10); "
        f"noisy/at-limit {summary['p99_ratio_noisy_vs_at_limit']:.3f}"
    )
    report["config"] = vars(args) | {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    report["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"rate-isolation-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
