"""The reliability battery of issue 16 at full size: faults injected into a real ``algora serve``.

    .venv/bin/python benchmarks/reliability.py [--only kill-worker,soak] [--soak-calls 100000]

Runs the scenarios of ``tests/reliability/`` (the same code, larger): a worker killed under
1,000 in-flight calls, a SIGTERM under load, 50 kill -9s of the gateway during publishes and
data writes, an upload cut off by a crash, a hung model deaf to SIGTERM, a version that fails
to load under traffic, and a soak of 100,000 calls. Each prints what it measured (counts of
2xx, coded 503 and other answers, recovery seconds, memory, open files and threads before and
after) and what it found wrong; the figures also go to benchmarks/results/reliability-<time>.json.
The exit status is 1 when a scenario found a problem. Every server listens on 127.0.0.1 in a
temporary folder and is stopped by its PID.

Two scenarios of the issue live elsewhere and are not repeated here: an alias moved under load
(tests/e2e/test_traffic_switch.py) and schemathesis against the OpenAPI document
(tests/security/test_openapi_contract.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the scenarios are the test suite's own

from tests.reliability.gateway_faults import (  # noqa: E402
    interrupted_upload,
    kill_during_writes,
    sigterm_under_load,
)
from tests.reliability.harness import Figures  # noqa: E402
from tests.reliability.worker_faults import (  # noqa: E402
    broken_version,
    hung_model,
    kill_a_worker,
    soak,
)

ELSEWHERE = (
    "alias moved under load: tests/e2e/test_traffic_switch.py",
    "schemathesis against the OpenAPI document: tests/security/test_openapi_contract.py",
)


def scenarios(args: argparse.Namespace) -> dict[str, Callable[[Path], Figures]]:
    return {
        "kill-worker": lambda root: kill_a_worker(root, calls=args.calls),
        "sigterm": lambda root: sigterm_under_load(root, in_flight=args.in_flight, hold_s=5.0),
        "kill-gateway": lambda root: kill_during_writes(root, kills=args.kills),
        "cut-upload": lambda root: interrupted_upload(root),
        "hung-model": lambda root: hung_model(root, timeout_s=2.0),
        "broken-version": lambda root: broken_version(root, callers=8, seconds=6.0),
        "soak": lambda root: soak(
            root, calls=args.soak_calls, warmup=args.soak_calls // 20, concurrency=16
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated scenario names (default: all)")
    parser.add_argument("--calls", type=int, default=1000, help="in flight when a worker dies")
    parser.add_argument("--in-flight", type=int, default=8, help="in flight at the SIGTERM")
    parser.add_argument("--kills", type=int, default=50, help="kill -9s of the gateway")
    parser.add_argument("--soak-calls", type=int, default=100_000)
    args = parser.parse_args()
    chosen = scenarios(args)
    names = args.only.split(",") if args.only else list(chosen)
    unknown = [n for n in names if n not in chosen]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {list(chosen)}")
    report: dict[str, object] = {}
    failed = False
    for name in names:
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"algora-{name}-") as tmp:
            figures = chosen[name](Path(tmp))
        took = time.monotonic() - started
        print(figures.report() + f"\n  ({took:.0f} s)", flush=True)
        report[name] = {"lines": figures.lines, "problems": figures.problems, "seconds": took}
        failed = failed or bool(figures.problems)
    print("\nelsewhere in the suite:\n" + "\n".join(f"  {line}" for line in ELSEWHERE))
    out = REPO / "benchmarks" / "results" / f"reliability-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"figures written to {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
