"""Density: the memory (PSS) of N warm tiny models on one machine.

    .venv/bin/python benchmarks/density.py [--models 100]

``algora serve`` publishes ``--models`` copies of a tiny model (``apply(input)`` returning its
input, no dependencies), each under its own name, with its workers started at publish; once all
are warm (each answered one call) it sums the proportional set size (PSS, from
``/proc/PID/smaps_rollup``) of every process of the server's tree: the gateway, its audit
writer and every model's worker (with the sandbox, bubblewrap and its child). PSS counts a page
shared by k processes as 1/k in each, so the sum is what the whole tree really holds. Prints
the total, the gateway's share and the mean per warm model, and writes
benchmarks/results/density-<time>.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serving  # this folder's shared helpers
from pinned import _tree

MODEL = "def apply(input):\n    return input\n"


def pss_kib(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--algora-cli", default=None)
    args = parser.parse_args()
    procs = serving.Processes()
    with tempfile.TemporaryDirectory(prefix="algora-density-") as temp:
        tmp = Path(temp)
        try:
            cli = serving.algora_cli(args.algora_cli)
            server = serving.start_server(procs, tmp, cli, env={"ALGORA_WARM_ON_PUBLISH": "true"})
            proc, base = server.proc, server.base
            auth = {"Authorization": f"Simple {server.key}"}
            baseline = sum(pss_kib(pid) for pid in _tree(proc.pid))

            def publish(index: int) -> None:
                folder = tmp / f"tiny{index}"
                folder.mkdir()
                (folder / "model.py").write_text(MODEL)
                (folder / "requirements.txt").write_text("")
                (folder / "algora.toml").write_text(f'[model]\nname = "tiny{index}"\n')
                serving.publish(cli, folder, server)

            started = time.monotonic()
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(publish, range(args.models)))
            print(f"  published {args.models} models in {time.monotonic() - started:.0f} s")
            for index in range(args.models):
                answer = httpx.post(f"{base}/v1/algo/admin/tiny{index}", json=index,
                                    headers=auth, timeout=120)  # fmt: skip
                if answer.status_code != 200:
                    raise serving.BenchError(f"tiny{index}: {answer.status_code} {answer.text}")
            time.sleep(2)
            tree = _tree(proc.pid)
            total = sum(pss_kib(pid) for pid in tree)
            gateway = pss_kib(proc.pid)
            result = {
                "models": args.models,
                "processes": len(tree),
                "pss_total_mib": round(total / 1024, 1),
                "pss_gateway_mib": round(gateway / 1024, 1),
                "pss_before_models_mib": round(baseline / 1024, 1),
                "pss_per_model_mib": round((total - baseline) / 1024 / args.models, 2),
            }
        finally:
            procs.stop_all()
    serving.report("density", args, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
