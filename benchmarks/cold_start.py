"""Cold start: from no worker to the first answer, and publish to first answer.

    .venv/bin/python benchmarks/cold_start.py [--samples 20]

``algora serve`` (pinned to core 0, ``ALGORA_POOL_IDLE_SECONDS=1``) with examples/iris published
once (its environment is then cached). Then, ``--samples`` times: wait past the idle timeout
and the reaper's tick (the version's workers are stopped), and time one call from the client
(core 1): that call starts a worker, forked from the environment's warm zygote (which has
imported scikit-learn once), which loads the model. Each cold call is split into the fork, the
model's load (both from the gateway's log) and the rest (the first call and the HTTP round
trip), each reported as a p50. Also: a
second publish of the same folder under another name (cached environment, so the time is its
build command, the smoke test and the start of its workers), timed to its first answer; and
``--publishes`` renamed copies of examples/sklearn-new (cached environment, no build command),
each timed from ``algora publish`` to its first answer. Prints
p50 and the spread, and writes benchmarks/results/cold-start-<time>.json.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serving  # this folder's shared helpers

IDLE_SECONDS = 1.0


def timed_call(url: str, auth: str) -> float:
    started = time.perf_counter()
    response = httpx.post(url, json=serving.BODY, headers={"Authorization": auth}, timeout=120)
    took = time.perf_counter() - started
    if response.status_code != 200 or "setosa" not in response.text:
        raise serving.BenchError(f"answered {response.status_code}: {response.text}")
    return took


SKLEARN_NEW = serving.REPO / "examples" / "sklearn-new"
_SPLIT = re.compile(
    r"cold start of a forked worker: fork ([\d.]+) ms, model load ([\d.]+) ms "
    r"\(after ([\d.]+) ms of sandbox set-up\)"
)


class LogSplits:
    """The fork and load times the gateway logs for each forked worker, read as they come."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.offset = log.stat().st_size if log.exists() else 0

    def latest(self) -> tuple[float, float] | None:
        """(fork ms, load ms) of the last worker forked since the previous call, the sandbox's
        set-up counted in the fork; None: none."""
        with self.log.open("rb") as f:
            f.seek(self.offset)
            text = f.read().decode("utf-8", "replace")
            self.offset = f.tell()
        found = _SPLIT.findall(text)
        if not found:
            return None
        fork, load, setup = (float(ms) for ms in found[-1])
        return fork + setup, load


def publish_sklearn_copy(
    tmp: Path, index: int, publish: Callable[[Path], None], models: str, auth: str
) -> float:
    """Seconds from ``algora publish`` of a renamed copy of examples/sklearn-new (no build
    command; its environment cached) to its first answer."""
    copy = tmp / f"sklearn-copy-{index}"
    shutil.copytree(SKLEARN_NEW, copy)
    manifest = copy / "algora.toml"
    renamed = f'name = "sklearn-copy-{index}"'
    manifest.write_text(manifest.read_text().replace('name = "sklearn-new"', renamed))
    started = time.perf_counter()
    publish(copy)
    response = httpx.post(
        f"{models}/sklearn-copy-{index}", json=[[0.0, 0.0]], headers={"Authorization": auth}
    )
    if response.status_code != 200:
        raise serving.BenchError(f"answered {response.status_code}: {response.text}")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--publishes", type=int, default=5, help="copies of sklearn-new")
    parser.add_argument("--algora-cli", default=None)
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    procs = serving.Processes()
    result: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="algora-cold-") as temp:
        tmp = Path(temp)
        try:
            cli = serving.algora_cli(args.algora_cli)
            env = {"ALGORA_POOL_IDLE_SECONDS": str(IDLE_SECONDS), "ALGORA_WARM_ON_PUBLISH": "true"}
            server = serving.start_server(procs, tmp, cli, env=env, core="0")
            base, auth = server.base, f"Simple {server.key}"

            def publish(folder: Path) -> None:
                serving.publish(cli, folder, server)

            publish(serving.IRIS)
            url = f"{base}/v1/algo/admin/iris/latest"
            timed_call(url, auth)
            samples: list[float] = []
            splits: list[tuple[float, float, float]] = []
            logged = LogSplits(tmp / "algora.log")
            for index in range(args.samples):
                time.sleep(IDLE_SECONDS + 1.5)  # past the idle timeout and the reaper's tick
                samples.append(timed_call(url, auth))
                total = samples[-1] * 1000
                split = logged.latest()
                if split is None:
                    print(f"  cold call {index + 1}: {total:.0f} ms (not forked)", flush=True)
                    continue
                fork, load = split
                splits.append((fork, load, total - fork - load))
                print(
                    f"  cold call {index + 1}: {total:.0f} ms = fork and sandbox {fork:.1f} + "
                    f"model load {load:.1f} + first call and HTTP {total - fork - load:.1f}",
                    flush=True,
                )
            warm = [timed_call(url, auth) for _ in range(20)]
            copy = tmp / "iris-copy"
            shutil.copytree(serving.IRIS, copy, ignore=shutil.ignore_patterns("*.joblib"))
            manifest = copy / "algora.toml"
            manifest.write_text(manifest.read_text().replace('name = "iris"', 'name = "iris2"'))
            started = time.perf_counter()
            publish(copy)
            timed_call(f"{base}/v1/algo/admin/iris2/latest", auth)
            publish_to_answer = time.perf_counter() - started
            publish(SKLEARN_NEW)  # its environment, cached for the copies timed below
            plain = [
                publish_sklearn_copy(tmp, index, publish, f"{base}/v1/algo/admin", auth)
                for index in range(args.publishes)
            ]
            result = {
                "cold_ms_p50": round(statistics.median(samples) * 1000, 1),
                "cold_ms_min": round(min(samples) * 1000, 1),
                "cold_ms_max": round(max(samples) * 1000, 1),
                "cold_split_ms_p50": {
                    name: round(statistics.median(part[i] for part in splits), 1)
                    for i, name in enumerate(("fork", "model_load", "first_call_and_http"))
                }
                if splits
                else None,
                "cold_calls_forked": len(splits),
                "warm_call_new_client_ms_p50": round(statistics.median(warm) * 1000, 2),
                "publish_to_first_answer_s": round(publish_to_answer, 2),
                "publish_to_first_answer_no_build_command_s_p50": round(
                    statistics.median(plain), 2
                ),
                "publish_to_first_answer_no_build_command_s_all": [round(t, 2) for t in plain],
                "samples": len(samples),
            }
        finally:
            procs.stop_all()
    serving.report("cold-start", args, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
