"""Serving overhead of Algora for the iris model, against raw predict and a hand-written server.

    .venv/bin/python benchmarks/serving.py [--duration 10] [--concurrency 1,8,64] [--skip-algora]

In one run, for examples/iris:
  a. raw in-process ``IrisClassifier.predict`` per call (calls/s, p50, p99);
  b. a minimal FastAPI + uvicorn server (benchmarks/fastapi_baseline.py, one worker, model
     in-process, ``POST /predict``) as a subprocess on a free loopback port;
  c. Algora: ``algora serve --data-dir TMP --port P``, ``algora publish examples/iris``, then
     ``POST /v1/algo/admin/iris/latest`` with ``Authorization: Simple KEY``.
(b) and (c) are loaded with wrk (benchmarks/post.lua) at each concurrency. It prints a table
with ratios against the FastAPI baseline and writes benchmarks/results/serving-<time>.json.
Every server it starts is stopped by PID (terminate, then kill after a grace), also on Ctrl-C.
Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
IRIS = REPO / "examples" / "iris"
LUA = HERE / "post.lua"
BASELINE_SERVER = HERE / "fastapi_baseline.py"
RESULTS_DIR = HERE / "results"
BODY: dict[str, float] = {
    "sepal_length": 5.1,
    "sepal_width": 3.5,
    "petal_length": 1.4,
    "petal_width": 0.2,
}
HOST = "127.0.0.1"
GRACE_S = 10.0


class BenchError(RuntimeError):
    """A stage failed; the message says why."""


# --------------------------------------------------------------------------- processes


class Processes:
    """Servers this run started. Each gets its own session, so its PID is its group id."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], log: Path, cwd: Path | None = None):
        handle = log.open("wb")
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
            )
        finally:
            handle.close()
        self.procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """Terminate by PID, kill after a grace, then clear what is left in its group."""
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(GRACE_S)
        # Its own children (Algora's model workers) share its process group, whose id is
        # its PID because of start_new_session; Linux does not reuse a PID that is still a
        # group id, so this reaches only processes this run started.
        if hasattr(os, "killpg"):
            _stop_group(proc.pid)
        self.procs = [(n, p) for n, p in self.procs if p is not proc]

    def stop_all(self) -> None:
        for _, proc in reversed(list(self.procs)):
            with contextlib.suppress(Exception):
                self.stop(proc)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_group(pgid: int) -> None:
    if not _group_alive(pgid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline and _group_alive(pgid):
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_http_ok(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"server exited with {proc.returncode}:\n{log_tail(log)}")
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as error:
            last = repr(error)
        time.sleep(0.2)
    raise BenchError(f"{url} not ready after {timeout:.0f}s ({last}):\n{log_tail(log)}")


# --------------------------------------------------------------------------- raw predict


def prepare_model(tmp: Path) -> Path:
    """Copy the iris example and run its build step (python train.py) there."""
    model_dir = tmp / "iris"
    model_dir.mkdir()
    for name in ("model.py", "train.py"):
        shutil.copy2(IRIS / name, model_dir / name)
    build = subprocess.run(
        [sys.executable, "train.py"],
        cwd=model_dir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if build.returncode != 0:
        raise BenchError(f"train.py failed:\n{build.stdout}\n{build.stderr}")
    return model_dir


def percentile_ms(sorted_ns: list[int], q: float) -> float:
    index = min(len(sorted_ns) - 1, max(0, round(q / 100 * len(sorted_ns) + 0.5) - 1))
    return sorted_ns[index] / 1e6


def measure_raw(model_dir: Path, max_calls: int, max_seconds: float) -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("bench_iris_model", model_dir / "model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    classifier = module.IrisClassifier(model_dir / "model.joblib")
    classifier.load()
    sample = classifier.predict(dict(BODY))
    for _ in range(200):  # warm-up
        classifier.predict(dict(BODY))
    timings: list[int] = []
    clock = time.perf_counter_ns
    started = clock()
    deadline = started + int(max_seconds * 1e9)
    while len(timings) < max_calls:
        body = dict(BODY)
        t0 = clock()
        classifier.predict(body)
        t1 = clock()
        timings.append(t1 - t0)
        if t1 > deadline:
            break
    elapsed = (clock() - started) / 1e9
    timings.sort()
    return {
        "calls": len(timings),
        "seconds": elapsed,
        "calls_per_s": len(timings) / elapsed,
        "p50_ms": percentile_ms(timings, 50),
        "p99_ms": percentile_ms(timings, 99),
        "mean_ms": statistics.fmean(timings) / 1e6,
        "sample_output": sample,
    }


# --------------------------------------------------------------------------- wrk


@dataclass
class LoadResult:
    target: str
    concurrency: int
    threads: int
    duration_s: float
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    source: str = "text"
    wrk_output: str = ""

    @property
    def clean(self) -> bool:
        return self.requests > 0 and self.non_2xx == 0 and not any(self.socket_errors.values())


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _time_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"unrecognised wrk time {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    """requests/s, p50 and p99 (ms), request count and errors from wrk --latency output.

    Exact figures from post.lua's WRK_JSON line win over the rounded text when present.
    """
    parsed: dict[str, Any] = {"non_2xx": 0, "socket_errors": {}, "source": "text"}
    if m := re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M):
        parsed["rps"] = float(m.group(1))
    if m := re.search(r"^\s+(\d+) requests in ([\d.]+\w+),", output, re.M):
        parsed["requests"] = int(m.group(1))
        parsed["duration_s"] = _time_ms(m.group(2)) / 1e3
    for q, key in ((50, "p50_ms"), (99, "p99_ms")):
        if m := re.search(rf"^\s+{q}(?:\.0+)?%\s+([\d.]+\w+)\s*$", output, re.M):
            parsed[key] = _time_ms(m.group(1))
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        parsed["non_2xx"] = int(m.group(1))
    if m := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        parsed["socket_errors"] = dict(
            zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=True)
        )
    if m := re.search(r"^WRK_JSON (\{.*\})\s*$", output, re.M):
        exact = json.loads(m.group(1))
        duration_s = exact["duration_us"] / 1e6
        parsed.update(
            requests=exact["requests"],
            duration_s=duration_s,
            rps=exact["requests"] / duration_s if duration_s else 0.0,
            p50_ms=exact["p50_us"] / 1e3,
            p99_ms=exact["p99_us"] / 1e3,
            non_2xx=exact["errors"]["status"],
            socket_errors={k: exact["errors"][k] for k in ("connect", "read", "write", "timeout")},
            source="lua",
        )
    missing = [k for k in ("rps", "p50_ms", "p99_ms", "requests") if k not in parsed]
    if missing:
        raise BenchError(f"could not read {missing} from wrk output:\n{output}")
    return parsed


@dataclass(frozen=True)
class Served:
    """An ``algora serve`` this run started: its process, its URL and its admin key."""

    proc: subprocess.Popen[bytes]
    base: str
    key: str


def start_server(
    procs: Processes,
    tmp: Path,
    cli: str,
    *,
    name: str = "algora",
    env: dict[str, str] | None = None,
    core: str | None = None,
    timeout: float = 120,
    args: tuple[str, ...] = (),
) -> Served:
    """``algora serve [ARGS]`` on a free loopback port with its data under ``tmp/NAME-data``
    (its whole process tree on ``core`` when given: ``0``, or ``0,1``); returns once ``/readyz``
    answers."""
    port = free_port()
    base = f"http://{HOST}:{port}"
    data_dir = tmp / f"{name}-data"
    argv = [cli, "serve", "--data-dir", str(data_dir), "--port", str(port), "--host", HOST, *args]
    if core is not None:
        argv = ["taskset", "-c", core, *argv]
    if env:
        argv = ["env", *(f"{k}={v}" for k, v in env.items()), *argv]
    log = tmp / f"{name}.log"
    proc = procs.start(name, argv, log)
    wait_http_ok(f"{base}/readyz", proc, timeout, log)
    return Served(proc, base, (data_dir / "admin.key").read_text().strip())


def publish(cli: str, folder: Path, server: Served, timeout: float = 900) -> None:
    """``algora publish FOLDER`` to ``server``; BenchError with its output if it fails."""
    done = subprocess.run(
        [cli, "publish", str(folder), "--url", server.base, "--key", server.key],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise BenchError(f"publish of {folder.name} failed:\n{done.stdout}\n{done.stderr}")


def report(kind: str, args: argparse.Namespace, result: dict[str, Any]) -> Path:
    """Print ``result`` and write it, with the arguments, to results/KIND-<time>.json."""
    print(json.dumps(result, indent=2))
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"args": vars(args), "result": result}, indent=2))
    print(f"written: {out}")
    return out


def run_wrk(
    target: str,
    url: str,
    concurrency: int,
    duration: float,
    auth: str | None = None,
    *,
    body: Any = BODY,
    core: str | None = None,
    script_env: dict[str, str] | None = None,
) -> LoadResult:
    """wrk at ``concurrency`` for ``duration`` seconds (on ``core`` only, when given), posting
    ``body`` as JSON, or what ``script_env`` sets for post.lua (a body file and headers)."""
    threads = 2 if concurrency >= 64 else 1
    argv = [
        *(["taskset", "-c", core] if core is not None else []),
        "wrk",
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{duration:g}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(LUA),
        url,
    ]
    env = {**os.environ, "WRK_BODY": json.dumps(body), "WRK_AUTH": auth or ""}
    env.update(script_env or {})
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=duration + 60, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"wrk exited with {done.returncode}:\n{done.stdout}\n{done.stderr}")
    parsed = parse_wrk(done.stdout)
    return LoadResult(
        target=target,
        concurrency=concurrency,
        threads=threads,
        duration_s=parsed.get("duration_s", duration),
        requests=parsed["requests"],
        rps=parsed["rps"],
        p50_ms=parsed["p50_ms"],
        p99_ms=parsed["p99_ms"],
        non_2xx=parsed["non_2xx"],
        socket_errors=parsed["socket_errors"],
        source=parsed["source"],
        wrk_output=done.stdout,
    )


def load_target(
    target: str,
    url: str,
    args: argparse.Namespace,
    auth: str | None = None,
) -> list[LoadResult]:
    if args.warmup > 0:
        run_wrk(target, url, max(args.concurrency), args.warmup, auth)
    results = []
    for concurrency in args.concurrency:
        result = run_wrk(target, url, concurrency, args.duration, auth)
        flag = "" if result.clean else f"  (!) non-2xx {result.non_2xx}, {result.socket_errors}"
        print(
            f"  {target:8} c={concurrency:<3} {result.rps:9.1f} req/s  "
            f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms{flag}",
            flush=True,
        )
        results.append(result)
    return results


# --------------------------------------------------------------------------- targets


def bench_fastapi(
    procs: Processes, tmp: Path, model_dir: Path, args: argparse.Namespace
) -> list[LoadResult]:
    port = free_port()
    log = tmp / "fastapi.log"
    argv = [sys.executable, str(BASELINE_SERVER), "--model-dir", str(model_dir)]
    proc = procs.start("fastapi", [*argv, "--port", str(port)], log)
    try:
        wait_http_ok(f"http://{HOST}:{port}/healthz", proc, args.startup_timeout, log)
        url = f"http://{HOST}:{port}/predict"
        check = httpx.post(url, json=BODY, timeout=10)
        if check.status_code != 200 or check.json().get("species") != "setosa":
            raise BenchError(f"baseline answered {check.status_code}: {check.text[:300]}")
        return load_target("fastapi", url, args)
    finally:
        procs.stop(proc)


def algora_cli(explicit: str | None) -> str:
    if explicit:
        return explicit
    candidate = Path(sys.executable).parent / "algora"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("algora")
    if found is None:
        raise BenchError(f"no algora console script next to {sys.executable} or on PATH")
    return found


def bench_algora(
    procs: Processes, tmp: Path, args: argparse.Namespace, info: dict[str, Any]
) -> list[LoadResult]:
    cli = algora_cli(args.algora_cli)
    data_dir = tmp / "algora-data"
    port = free_port()
    base = f"http://{HOST}:{port}"
    argv = [cli, "serve", "--data-dir", str(data_dir), "--port", str(port)]
    serve_help = subprocess.run(
        [cli, "serve", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    if "--host" in serve_help.stdout:
        argv += ["--host", HOST]  # loopback only, whatever the default is
    log = tmp / "algora-serve.log"
    info["serve_log"] = str(log)
    started = time.monotonic()
    proc = procs.start("algora", argv, log)
    try:
        wait_http_ok(f"{base}/readyz", proc, args.startup_timeout, log)
        info["ready_s"] = round(time.monotonic() - started, 2)
        key_file = data_dir / "admin.key"
        deadline = time.monotonic() + 10
        while not key_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not key_file.exists():
            raise BenchError(f"{key_file} was not written")
        key = key_file.read_text().strip()

        print(f"  publishing {IRIS.relative_to(REPO)} ...", flush=True)
        started = time.monotonic()
        try:
            publish = subprocess.run(
                [cli, "publish", str(IRIS), "--url", base, "--key", key],
                capture_output=True,
                text=True,
                timeout=args.publish_timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise BenchError(f"algora publish ran past {args.publish_timeout}s") from error
        info["publish_s"] = round(time.monotonic() - started, 2)
        if publish.returncode != 0:
            raise BenchError(
                f"algora publish exited with {publish.returncode}:\n"
                f"{publish.stdout[-3000:]}\n{publish.stderr[-3000:]}\n{log_tail(log)}"
            )

        url = f"{base}/v1/algo/admin/iris/latest"
        auth = f"Simple {key}"
        info["first_call"] = first_call(url, auth, proc, log, args.startup_timeout)
        return load_target("algora", url, args, auth)
    except BaseException:
        info["serve_log_tail"] = log_tail(log, 60)
        raise
    finally:
        procs.stop(proc)


def first_call(
    url: str, auth: str, proc: subprocess.Popen[bytes], log: Path, timeout: float
) -> dict[str, Any]:
    """Call until the first 200 (the pool may start lazily); check the answer is right."""
    headers = {"Authorization": auth, "Content-Type": "application/json"}
    started = time.monotonic()
    last = ""
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise BenchError(f"algora serve exited with {proc.returncode}:\n{log_tail(log)}")
        try:
            response = httpx.post(url, content=json.dumps(BODY), headers=headers, timeout=60)
        except httpx.HTTPError as error:
            last = repr(error)
        else:
            if response.status_code == 200:
                body = response.json()
                result = body.get("result", body) if isinstance(body, dict) else body
                if not isinstance(result, dict) or result.get("species") != "setosa":
                    raise BenchError(f"unexpected answer from {url}: {response.text[:500]}")
                return {"seconds": round(time.monotonic() - started, 3), "response": body}
            last = f"HTTP {response.status_code}: {response.text[:500]}"
            if response.status_code in (400, 401, 403, 404, 422):
                raise BenchError(f"{url} answered {last}")
        time.sleep(0.5)
    raise BenchError(f"{url} gave no 200 within {timeout:.0f}s; last: {last}")


# --------------------------------------------------------------------------- report


def compare(raw: dict[str, Any] | None, loads: dict[str, list[LoadResult]]) -> list[dict[str, Any]]:
    baseline = {r.concurrency: r for r in loads.get("fastapi", [])}
    rows = []
    for target, results in loads.items():
        for r in results:
            base = baseline.get(r.concurrency)
            rows.append(
                {
                    "target": target,
                    "concurrency": r.concurrency,
                    "rps": r.rps,
                    "p50_ms": r.p50_ms,
                    "p99_ms": r.p99_ms,
                    "throughput_vs_fastapi": r.rps / base.rps if base and base.rps else None,
                    "p50_overhead_vs_fastapi_ms": r.p50_ms - base.p50_ms if base else None,
                    "p50_overhead_vs_raw_ms": r.p50_ms - raw["p50_ms"] if raw else None,
                    "clean": r.clean,
                }
            )
    return rows


def print_table(raw: dict[str, Any] | None, rows: list[dict[str, Any]]) -> None:
    header = (
        "target",
        "conc",
        "req/s",
        "p50 ms",
        "p99 ms",
        "x FastAPI req/s",
        "p50 +ms vs FastAPI",
    )
    lines = []
    if raw:
        lines.append(
            (
                "raw predict",
                "1",
                f"{raw['calls_per_s']:.0f}",
                f"{raw['p50_ms']:.3f}",
                f"{raw['p99_ms']:.3f}",
                "-",
                "-",
            )
        )
    for row in rows:
        ratio = row["throughput_vs_fastapi"]
        over = row["p50_overhead_vs_fastapi_ms"]
        lines.append(
            (
                row["target"] + ("" if row["clean"] else " (!)"),
                str(row["concurrency"]),
                f"{row['rps']:.0f}",
                f"{row['p50_ms']:.3f}",
                f"{row['p99_ms']:.3f}",
                "-" if ratio is None else f"{ratio:.2f}x",
                "-" if over is None else f"{over:+.3f}",
            )
        )
    widths = [max(len(str(x[i])) for x in (header, *lines)) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    print()
    print(fmt.format(*header))
    print(fmt.format(*("-" * w for w in widths)))
    for line in lines:
        print(fmt.format(*line))
    if raw:
        for target in ("fastapi", "algora"):
            at1 = next((r for r in rows if r["target"] == target and r["concurrency"] == 1), None)
            if at1:
                print(
                    f"{target} p50 overhead over raw predict at c=1: "
                    f"{at1['p50_overhead_vs_raw_ms']:+.3f} ms "
                    f"({at1['p50_ms']:.3f} - {raw['p50_ms']:.3f})"
                )
    if any(not row["clean"] for row in rows):
        print("(!) some responses were not 2xx or hit socket errors: those rows are not valid")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",") if x.strip()],
        default=[1, 8, 64],
        help="comma-separated connection counts (default 1,8,64)",
    )
    parser.add_argument("--skip-algora", action="store_true", help="raw and FastAPI only")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of unrecorded load")
    parser.add_argument("--raw-calls", type=int, default=20000, help="max raw predict calls")
    parser.add_argument("--startup-timeout", type=float, default=120)
    parser.add_argument("--publish-timeout", type=float, default=900)
    parser.add_argument(
        "--algora-cli", help="the algora command (default: the one next to this Python)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    args = parser.parse_args(argv)
    if not args.concurrency or min(args.concurrency) < 1 or args.duration <= 0:
        parser.error("need a positive duration and concurrency levels >= 1")
    return args


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def environment_info() -> dict[str, Any]:
    import sklearn  # the benchmark environment has it (extra "bench")

    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "sklearn": sklearn.__version__,
        "wrk": (wrk.stdout or wrk.stderr).splitlines()[0] if (wrk.stdout or wrk.stderr) else "",
    }


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(prefix="algora-bench-"))
    try:
        yield tmp
    finally:
        if keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run_stages(
    procs: Processes,
    tmp: Path,
    args: argparse.Namespace,
    report: dict[str, Any],
    loads: dict[str, list[LoadResult]],
) -> bool:
    """Raw predict, the FastAPI baseline, then Algora. Returns True if a stage failed."""
    try:
        print("training examples/iris (python train.py) ...", flush=True)
        model_dir = prepare_model(tmp)
        max_seconds = min(args.duration, 10)
        print(f"raw predict: up to {args.raw_calls} calls / {max_seconds:g}s", flush=True)
        raw = report["raw_predict"] = measure_raw(model_dir, args.raw_calls, max_seconds)
        print(
            f"  raw      {raw['calls_per_s']:9.0f} calls/s  "
            f"p50 {raw['p50_ms']:7.3f} ms  p99 {raw['p99_ms']:7.3f} ms",
            flush=True,
        )
        print("FastAPI + uvicorn baseline:", flush=True)
        loads["fastapi"] = bench_fastapi(procs, tmp, model_dir, args)
    except (BenchError, OSError, subprocess.SubprocessError, httpx.HTTPError) as error:
        report["error"] = str(error)
        print(f"baseline failed: {error}", file=sys.stderr)
        return True
    if args.skip_algora:
        report["algora"] = {"skipped": True}
        return False
    print("Algora:", flush=True)
    info: dict[str, Any] = {}
    report["algora"] = info
    try:
        loads["algora"] = bench_algora(procs, tmp, args, info)
    except (BenchError, OSError, subprocess.SubprocessError, httpx.HTTPError) as error:
        info["error"] = str(error)
        print(f"algora failed: {error}", file=sys.stderr)
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _raise_interrupt)
    report: dict[str, Any] = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": {
            "duration_s": args.duration,
            "concurrency": args.concurrency,
            "warmup_s": args.warmup,
            "body": BODY,
        },
        "environment": environment_info(),
    }
    loads: dict[str, list[LoadResult]] = {}
    procs = Processes()
    try:
        with workspace(args.keep) as tmp:
            try:
                failed = run_stages(procs, tmp, args, report, loads)
                raw = report.get("raw_predict")
            finally:
                procs.stop_all()  # before the temp dir goes
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped, no results written", file=sys.stderr)
        return 130

    rows = compare(raw, loads)
    print_table(raw, rows)
    report["loads"] = {t: [asdict(r) for r in rs] for t, rs in loads.items()}
    report["comparison"] = rows
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"serving-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwrote {out.relative_to(REPO)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
