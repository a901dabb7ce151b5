"""Plain functions the test packages share: git, the CLI as a subprocess, waiting for builds.

Fixtures live in the conftest.py files; what a test calls directly lives here, once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from algora.sdk.client import Client
from algora.testing import RunningServer
from algora.workers.local import LocalBackend
from algora.workers.pool import Pool
from algora.workers.spec import WorkerSpec

REPO = Path(__file__).resolve().parents[1]
"""The repository's root: examples/, docs/ and algora/ are found from here."""

ADK_REQUIREMENTS = (REPO / "examples" / "adk-hello" / "requirements.txt").read_text(
    encoding="utf-8"
)
"""The ADK example's requirements: what an Algorithmia algorithm installs."""

ALGORITHM_SETTINGS = {
    "language": "python3-1",
    "source_visibility": "closed",
    "license": "apl",
    "network_access": "isolated",
    "pipeline_enabled": False,
}
"""The settings Algorithmia's client sends to ``create`` an algorithm."""


def git(
    *args: str, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """git itself, with no configuration from this machine and no prompts."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(cwd or Path.cwd()),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Tester",
        "GIT_AUTHOR_EMAIL": "tester@example.com",
        "GIT_COMMITTER_NAME": "Tester",
        "GIT_COMMITTER_EMAIL": "tester@example.com",
    }
    done = subprocess.run(
        ["git", "-c", "credential.helper=", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def algora(
    *args: str,
    server: RunningServer | None = None,
    url: str | None = None,
    key: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m algora ARGS`` as a user runs it, at ``server`` (or at ``url`` with ``key``)."""
    target: dict[str, str] = {}
    if server is not None:
        target = {"ALGORA_URL": server.url, "ALGORA_KEY": server.key}
    if url is not None:
        target["ALGORA_URL"] = url
    if key is not None:
        target["ALGORA_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "algora", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **target, **(env or {})},
        cwd=cwd,
        input=input,
        timeout=300,
        check=False,
    )


def finished_build(algo: Any, commit: str, seconds: float = 300) -> dict[str, Any]:
    """The build of ``commit`` once it has finished (a push builds in the background)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for build in algo.get_builds()["results"]:
            if build["commit_sha"] == commit and build["status"] != "in-progress":
                return dict(build)
        time.sleep(0.3)
    raise AssertionError(f"no finished build of {commit}: {algo.get_builds()}")


def digest(value: str) -> str:
    """The hex SHA-256 of ``value``: how tests look for a secret without holding it in output."""
    return hashlib.sha256(value.encode()).hexdigest()


def new_users(admin: Client, *names: str) -> dict[str, str]:
    """Each of ``names`` made a user by ``admin`` (an admin's SDK client): their first keys."""
    keys: dict[str, str] = {}
    for name in names:
        made = admin.request("POST", "/api/v1/principals", json={"name": name})
        assert made.status_code == 201, made.text
        keys[name] = made.json()["key"]
    return keys


def worker_spec(
    root: Path, source: str, *, name: str = "worker", entrypoint: str = "model:apply", **kw: Any
) -> WorkerSpec:
    """A worker for ``source``, written to ROOT/sources/NAME/model.py; it logs to
    ROOT/logs/NAME.log, and ``kw`` are further WorkerSpec fields."""
    src = root / "sources" / name
    src.mkdir(parents=True, exist_ok=True)
    (src / "model.py").write_text(textwrap.dedent(source), encoding="utf-8")
    return WorkerSpec(
        python=Path(sys.executable),
        source_dir=src,
        entrypoint=entrypoint,
        log_path=root / "logs" / f"{name}.log",
        **kw,
    )


def encode(value: Any, content_type: str) -> bytes:
    """``value`` as a call's body of ``content_type`` (json, text, or binary bytes as they are)."""
    if content_type == "json":
        return json.dumps(value).encode()
    if content_type == "text":
        return str(value).encode()
    return bytes(value)


def saved_models() -> Any:
    """``examples/saved-models/make_models.py`` as a module: it makes a saved model of each
    format a model with no code may have (the test process's own frameworks save them)."""
    import importlib.util

    path = REPO / "examples" / "saved-models" / "make_models.py"
    spec = importlib.util.spec_from_file_location("make_saved_models", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_with_pool(
    tmp_path: Path, spec: WorkerSpec, body: Callable[[Pool], Awaitable[None]]
) -> None:
    """Start a pool of ``spec`` on the local backend, run ``body`` with it, stop it."""

    async def main() -> None:
        pool = Pool(spec, LocalBackend(), tmp_path / "data")
        await pool.start()
        try:
            await body(pool)
        finally:
            await pool.stop()
        assert not pool.healthy

    asyncio.run(main())


def matmul_onnx_model() -> Any:
    """A tiny ONNX graph, ``y = x @ W`` (W: 4 x 2 ones), whose weight can be saved as an
    external data file."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.ones((4, 2), dtype=np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "external",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])],
        [weights],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def infer_v2(server: RunningServer, model: str, values: list[Any]) -> dict[str, Any]:
    """Call ``model`` over the Open Inference Protocol with one JSON tensor of ``values``
    (nested lists, or a list of strings), named and typed as the model's metadata declares
    its one input; the output tensors by name, as NumPy arrays."""
    import httpx
    import numpy as np

    headers = {"Authorization": f"Simple {server.key}"}
    url = f"{server.url}/v2/models/{model}"
    metadata = httpx.get(url, headers=headers, timeout=60)
    assert metadata.status_code == 200, metadata.text
    (declared,) = metadata.json()["inputs"]
    array = np.array(values)
    tensor = {
        "name": declared["name"],
        "datatype": declared["datatype"],
        "shape": list(array.shape),
        "data": array.reshape(-1).tolist(),
    }
    answer = httpx.post(f"{url}/infer", json={"inputs": [tensor]}, headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text
    return {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in answer.json()["outputs"]}
