"""A tiny ONNX model (published with no code) over the Open Inference Protocol's three wires:
REST with JSON tensors, REST with the binary tensor extension, and gRPC.

    .venv/bin/python benchmarks/onnx_protocols.py [--rounds 3] [--duration 10]
        [--concurrency 1,8,64]

``algora serve --grpc-port`` with its whole process tree on core 0; the load on core 1: wrk for
REST (``post.lua``, with a JSON body or with the binary body from a file), and for gRPC a closed
loop of ``--concurrency`` callers in one ``grpc.aio`` client process (Python: at high
concurrency the client, not the server, may be the limit; its CPU is reported). The model is
``examples/saved-models``' tiny ONNX graph (4 features in, 3 probabilities out), one row a call.
Each round runs the three wires at each concurrency, the order reversed every other round;
the report gives requests/s, p50 and p99 medians, and each wire's ratio to REST with JSON
within the round. Results go to benchmarks/results/onnx-protocols-<time>.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pinned  # this folder's pinned, alternated runs
import serving  # this folder's shared helpers

ROW = [5.1, 3.5, 1.4, 0.2]
MODEL = "admin/tiny-onnx"

GRPC_LOAD = """
import asyncio, json, struct, sys, time
import grpc
from algora.protocols.oip import grpc_predict_v2_pb2 as pb
from algora.protocols.oip.grpc_messages import RPCS

address, key, concurrency, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
infer = next(rpc for rpc in RPCS if rpc.name == "ModelInfer")
request = pb.ModelInferRequest(model_name="admin/tiny-onnx")
request.inputs.add(name="features", datatype="FP32", shape=[1, 4])
request.raw_input_contents.append(struct.pack("<4f", 5.1, 3.5, 1.4, 0.2))
metadata = (("authorization", "Simple " + key),)


async def main():
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(infer.path, request_serializer=infer.request.SerializeToString,
                                   response_deserializer=infer.response.FromString)
        times, errors, end = [], 0, time.perf_counter() + seconds

        async def caller():
            nonlocal errors
            while time.perf_counter() < end:
                started = time.perf_counter_ns()
                try:
                    await call(request, metadata=metadata, timeout=10)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                times.append(time.perf_counter_ns() - started)

        began = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        took = time.perf_counter() - began
    times.sort()
    print(json.dumps({"requests": len(times), "rps": len(times) / took, "errors": errors,
                      "p50_ms": times[len(times) // 2] / 1e6,
                      "p99_ms": times[int(len(times) * 0.99)] / 1e6,
                      "client_cpu_s": time.process_time()}))


asyncio.run(main())
"""


def make_model(tmp: Path) -> Path:
    path = serving.REPO / "examples" / "saved-models" / "make_models.py"
    spec = importlib.util.spec_from_file_location("make_saved_models", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.make_onnx(tmp / "tiny-onnx")
    return tmp / "tiny-onnx"


def binary_body(tmp: Path) -> tuple[Path, int]:
    raw = struct.pack("<4f", *ROW)
    header = json.dumps({
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4],
                    "parameters": {"binary_data_size": len(raw)}}],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
    }).encode()  # fmt: skip
    path = tmp / "infer.bin"
    path.write_bytes(header + raw)
    return path, len(header)


JSON_BODY = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4], "data": ROW}]}


def rest(
    wire: str, url: str, auth: str, level: int, duration: float, tmp: Path
) -> serving.LoadResult:
    if wire == "rest-json":
        return serving.run_wrk(
            wire, url, level, duration, auth, body=JSON_BODY, core=pinned.LOAD_CORE
        )
    body, header_length = binary_body(tmp)
    script_env = {
        "WRK_BODY_FILE": str(body),
        "WRK_CONTENT_TYPE": "application/octet-stream",
        "WRK_HEADER_NAME": "Inference-Header-Content-Length",
        "WRK_HEADER_VALUE": str(header_length),
    }
    return serving.run_wrk(
        wire,
        url,
        level,
        duration,
        auth,
        core=pinned.LOAD_CORE,
        script_env=script_env,
    )


def grpc_load(address: str, key: str, level: int, duration: float) -> dict[str, Any]:
    done = subprocess.run(
        [
            "taskset",
            "-c",
            pinned.LOAD_CORE,
            sys.executable,
            "-c",
            GRPC_LOAD,
            address,
            key,
            str(level),
            str(duration),
        ],
        capture_output=True,
        text=True,
        timeout=duration + 120,
        check=False,
    )
    if done.returncode != 0:
        raise serving.BenchError(f"the gRPC load failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--algora-cli", default=None)
    parser.add_argument("--startup-timeout", type=float, default=120)
    parser.add_argument("--publish-timeout", type=float, default=900)
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    wires = ["rest-json", "rest-binary", "grpc"]
    procs = serving.Processes()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="algora-onnx-") as name:
        tmp = Path(name)
        try:
            cli = serving.algora_cli(args.algora_cli)
            grpc_port = serving.free_port()
            server = serving.start_server(
                procs,
                tmp,
                cli,
                env={"ALGORA_GRPC_PORT": str(grpc_port)},
                core=pinned.SERVER_CORE,
                timeout=args.startup_timeout,
            )
            serving.publish(cli, make_model(tmp), server, args.publish_timeout)
            url, auth = f"{server.base}/v2/models/{MODEL}/infer", f"Simple {server.key}"
            address = f"{serving.HOST}:{grpc_port}"
            rest("rest-json", url, auth, max(levels), 2, tmp)  # warm up, unrecorded
            grpc_load(address, server.key, max(levels), 2)
            for round_ in range(1, args.rounds + 1):
                order = wires if round_ % 2 else wires[::-1]
                for level in levels:
                    for wire in order:
                        if wire == "grpc":
                            got = grpc_load(address, server.key, level, args.duration)
                            figures = {k: got[k] for k in ("rps", "p50_ms", "p99_ms", "errors")}
                            figures["client_cpu_s"] = got["client_cpu_s"]
                        else:
                            done = rest(wire, url, auth, level, args.duration, tmp)
                            figures = {
                                "rps": done.rps,
                                "p50_ms": done.p50_ms,
                                "p99_ms": done.p99_ms,
                                "errors": done.non_2xx + sum(done.socket_errors.values()),
                            }
                        results.append(
                            {"round": round_, "concurrency": level, "wire": wire, **figures}
                        )
                        print(
                            f"  round {round_} c={level} {wire}: {figures['rps']:.0f} req/s "
                            f"p50 {figures['p50_ms']:.2f} ms p99 {figures['p99_ms']:.2f} ms",
                            flush=True,
                        )
        finally:
            procs.stop_all()
    print(f"\nmedians over {args.rounds} rounds; ratio = req/s over rest-json's in the same round")
    print(
        f"{'wire':12} {'c':>3} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6} {'spread':>11}"
    )
    summary = []
    for level in levels:
        at_level = [r for r in results if r["concurrency"] == level]
        base = {r["round"]: r for r in at_level if r["wire"] == "rest-json"}
        for wire in wires:
            mine = [r for r in at_level if r["wire"] == wire]
            ratios = [r["rps"] / base[r["round"]]["rps"] for r in mine if r["round"] in base]
            row = {
                "wire": wire,
                "concurrency": level,
                "rps": statistics.median(r["rps"] for r in mine),
                "p50_ms": statistics.median(r["p50_ms"] for r in mine),
                "p99_ms": statistics.median(r["p99_ms"] for r in mine),
                "ratio": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "errors": sum(r["errors"] for r in mine),
            }
            summary.append(row)
            flag = f"  (!) {row['errors']} errors" if row["errors"] else ""
            print(
                f"{wire:12} {level:>3} {row['rps']:8.0f} {row['p50_ms']:8.2f} "
                f"{row['p99_ms']:8.2f} {row['ratio']:6.2f} "
                f"{row['ratio_min']:.2f}..{row['ratio_max']:.2f}{flag}"
            )
    serving.RESULTS_DIR.mkdir(exist_ok=True)
    out = serving.RESULTS_DIR / f"onnx-protocols-{time.strftime('%Y%m%d-%H%M%S')}.json"
    record = {"summary": summary, "points": results, "args": vars(args)}
    out.write_text(json.dumps(record, indent=2))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
