"""The peers Algora is measured against, each installed in its own virtual environment and
serving the benchmark model the way its documentation shows.

=================  ==========================================================================
``bentoml``        BentoML 1.4, a ``@bentoml.service`` calling the model's ``predict``
``bentoml-batch``  the same with ``@bentoml.api(batchable=True)`` over ``predict_batch``
``mlserver``       MLServer 1.7 with mlserver-sklearn serving the fitted estimator (V2 JSON)
``mlserver-batch`` the same with adaptive batching (``max_batch_size``, ``max_batch_time``)
``ray``            Ray Serve, one replica of a deployment calling ``predict``
``ray-batch``      the same with ``@serve.batch`` over ``predict_batch``
``mlflow``         ``mlflow models serve`` of the estimator saved with ``mlflow.sklearn``
=================  ==========================================================================

Environments live under ``~/.cache/algora-bench/peers/<name>-<hash of requirements>`` and are
made once with uv (``uv venv`` + ``uv pip install``), with the scikit-learn, NumPy and joblib
of the Python running the benchmark so that every system loads the same artifact.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import serving  # this folder's shared helpers

HERE = Path(__file__).resolve().parent
CACHE = Path.home() / ".cache" / "algora-bench" / "peers"
_SAME_AS_HERE = ("scikit-learn", "numpy", "joblib")

REQUIREMENTS = {
    "bentoml": ["bentoml>=1.4,<1.5"],
    # uvloop 0.22 refuses get_event_loop() without a loop, which MLServer 1.7's workers call
    "mlserver": ["mlserver>=1.7,<1.8", "mlserver-sklearn>=1.7,<1.8", "uvloop<0.22"],
    "ray": ["ray[serve]>=2.40,<3"],
    "mlflow": ["mlflow>=3,<4"],
}


@dataclass(frozen=True)
class Target:
    """A running peer: where to send what, and a word its right answer contains."""

    url: str
    body: Any
    check: str
    pid: int


@dataclass(frozen=True)
class Model:
    """The benchmark model as every peer gets it."""

    folder: Path
    """model.py and its artifact (``class_name`` loads it)."""
    class_name: str
    estimator: Path
    """The fitted scikit-learn estimator alone, for the peers that serve one directly."""
    body: Any
    """The input the model class takes."""
    row: list[float]
    """The same input as one row of features, for the peers that take arrays."""
    check: str


def python_of(family: str, log: Callable[[str], None] = print) -> Path:
    """The interpreter of ``family``'s environment, made first if needed (minutes, once)."""
    pins = [f"{name}=={metadata.version(name)}" for name in _SAME_AS_HERE]
    requirements = [*REQUIREMENTS[family], *pins]
    digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:12]
    venv = CACHE / f"{family}-{digest}"
    python = venv / "bin" / "python"
    if (venv / ".complete").exists():
        return python
    log(f"  installing {family} into {venv} ({', '.join(requirements)}) ...")
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    run = {"check": True, "capture_output": True, "text": True, "timeout": 1800}
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], **run)
    env = {**os.environ, "VIRTUAL_ENV": str(venv)}
    subprocess.run([uv, "pip", "install", "-q", *requirements], env=env, **run)
    (venv / ".complete").write_text("\n".join(requirements) + "\n")
    return python


def _pinned(argv: list[str], core: str) -> list[str]:
    return ["taskset", "-c", core, *argv]


def _env(pairs: dict[str, str]) -> list[str]:
    return ["env", *(f"{key}={value}" for key, value in pairs.items())]


def start_bentoml(
    procs: serving.Processes, tmp: Path, model: Model, core: str, timeout: float, batch: bool
) -> Target:
    python = python_of("bentoml")
    port = serving.free_port()
    service = "bentoml_service:Batched" if batch else "bentoml_service:Plain"
    env = {"PEER_MODEL_DIR": str(model.folder), "PEER_CLASS": model.class_name,
           "BENTOML_DO_NOT_TRACK": "True"}  # fmt: skip
    bentoml = str(python.with_name("bentoml"))
    argv = [bentoml, "serve", service, "--host", serving.HOST, "--port", str(port)]
    name = "bentoml-batch" if batch else "bentoml"
    log = tmp / f"{name}.log"
    proc = procs.start(name, _pinned([*_env(env), *argv], core), log, cwd=HERE / "peers")
    serving.wait_http_ok(f"http://{serving.HOST}:{port}/readyz", proc, timeout, log)
    body = {"inputs": [model.body]} if batch else {"features": model.body}
    return Target(f"http://{serving.HOST}:{port}/predict", body, model.check, proc.pid)


def start_mlserver(
    procs: serving.Processes, tmp: Path, model: Model, core: str, timeout: float, batch: bool
) -> Target:
    python = python_of("mlserver")
    name = "mlserver-batch" if batch else "mlserver"
    folder = tmp / name
    folder.mkdir()
    port, grpc = serving.free_port(), serving.free_port()
    settings = {"host": serving.HOST, "http_port": port, "grpc_port": grpc,
                "metrics_endpoint": None}  # fmt: skip
    (folder / "settings.json").write_text(json.dumps(settings))
    model_settings: dict[str, Any] = {
        "name": "model",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(model.estimator)},
    }
    if batch:
        model_settings.update(max_batch_size=32, max_batch_time=0.002)
    (folder / "model-settings.json").write_text(json.dumps(model_settings))
    argv = [str(python.with_name("mlserver")), "start", str(folder)]
    log = tmp / f"{name}.log"
    proc = procs.start(name, _pinned(argv, core), log)
    base = f"http://{serving.HOST}:{port}"
    serving.wait_http_ok(f"{base}/v2/models/model/ready", proc, timeout, log)
    tensor = {"name": "input-0", "shape": [1, len(model.row)], "datatype": "FP64",
              "data": model.row}  # fmt: skip
    return Target(f"{base}/v2/models/model/infer", {"inputs": [tensor]}, "outputs", proc.pid)


def start_ray(
    procs: serving.Processes, tmp: Path, model: Model, core: str, timeout: float, batch: bool
) -> Target:
    python = python_of("ray")
    port = serving.free_port()
    name = "ray-batch" if batch else "ray"
    argv = [str(python), str(HERE / "peers" / "rayserve_app.py"), "--model-dir",
            str(model.folder), "--class", model.class_name, "--port", str(port)]  # fmt: skip
    if batch:
        argv.append("--batch")
    log = tmp / f"{name}.log"
    env = {"RAY_USAGE_STATS_ENABLED": "0"}
    proc = procs.start(name, _pinned([*_env(env), *argv], core), log)
    serving.wait_http_ok(f"http://{serving.HOST}:{port}/-/healthz", proc, timeout, log)
    return Target(f"http://{serving.HOST}:{port}/predict", model.body, model.check, proc.pid)


def start_mlflow(
    procs: serving.Processes, tmp: Path, model: Model, core: str, timeout: float, batch: bool
) -> Target:
    del batch  # mlflow models serve has no batching
    python = python_of("mlflow")
    saved = tmp / "mlflow-model"
    program = (
        "import sys, joblib, mlflow.sklearn; "
        "mlflow.sklearn.save_model(joblib.load(sys.argv[1]), sys.argv[2])"
    )
    subprocess.run(
        [str(python), "-c", program, str(model.estimator), str(saved)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    port = serving.free_port()
    argv = [str(python.with_name("mlflow")), "models", "serve", "-m", str(saved), "-h",
            serving.HOST, "-p", str(port), "--env-manager", "local"]  # fmt: skip
    log = tmp / "mlflow.log"
    env = {"MLFLOW_MODELS_WORKERS": "1", "PATH": f"{python.parent}:{os.environ['PATH']}"}
    proc = procs.start("mlflow", _pinned([*_env(env), *argv], core), log)
    serving.wait_http_ok(f"http://{serving.HOST}:{port}/ping", proc, timeout, log)
    body = {"inputs": [model.row]}
    return Target(f"http://{serving.HOST}:{port}/invocations", body, "predictions", proc.pid)


Starter = Callable[[serving.Processes, Path, Model, str, float, bool], Target]
PEERS: dict[str, tuple[Starter, bool]] = {
    "bentoml": (start_bentoml, False),
    "bentoml-batch": (start_bentoml, True),
    "mlserver": (start_mlserver, False),
    "mlserver-batch": (start_mlserver, True),
    "ray": (start_ray, False),
    "ray-batch": (start_ray, True),
    "mlflow": (start_mlflow, False),
}
"""Peer name -> (how to start it, with batching)."""


def start(
    name: str, procs: serving.Processes, tmp: Path, model: Model, core: str, timeout: float
) -> Target:
    starter, batch = PEERS[name]
    return starter(procs, tmp, model, core, timeout, batch)
