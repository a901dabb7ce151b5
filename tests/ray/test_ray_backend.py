"""Workers on a real Ray cluster (two nodes on this machine): ``algora serve`` with
``ALGORA_WORKER_BACKEND=ray`` publishes and calls through both APIs, its replicas spread over
the nodes, a model calls another through the actor's tunnel, and a worker or its actor killed
under calls costs only coded 503s before the replica comes back."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from algora.testing import RunningServer, write_model

from ..reliability.harness import (
    Tally,
    _parent,
    alive,
    call,
    cmdline,
    descendants,
    fire,
    wait_for,
    workers,
)
from .conftest import RayCluster

HELLO = 'def hello(input: str) -> str:\n    return "Hello " + input\n'
CALLER = """
import json
import contextlib
import os
import urllib.request


def caller(input: str) -> str:
    request = urllib.request.Request(
        os.environ["ALGORITHMIA_API"] + "/v1/algo/admin/hello",
        data=json.dumps(input).encode(),
        headers={"Authorization": os.environ["ALGORITHMIA_API_KEY"],
                 "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return "via Ray: " + json.loads(response.read())["result"]
"""
SLEEPER = """
import time


def {name}(input: float) -> str:
    time.sleep(input)
    return "done"
"""
TWO_REPLICAS = "\n[serving]\nreplicas = 2\n"
BACK_WITHIN = 90.0


@pytest.fixture(scope="module")
def server(ray_cluster: RayCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    env = {
        **ray_cluster.env,
        "ALGORA_WORKER_BACKEND": "ray",
        "ALGORA_RAY_ADDRESS": ray_cluster.address,
    }
    data = tmp_path_factory.mktemp("ray-gateway") / "data"
    with RunningServer(data, env=env, start_timeout=120) as running:
        yield running


def publish(server: RunningServer, root: Path, name: str, code: str, **kw: Any) -> None:
    folder = write_model(root / name, name, code, entrypoint=f"model:{name}", **kw)
    with server.client() as admin:
        admin.publish(folder)


def actors(function: str) -> dict[int, tuple[int | None, set[int]]]:
    """The live Ray actors serving ``function``: actor pid -> (its node's raylet, its workers)."""
    found: dict[int, tuple[int | None, set[int]]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not cmdline(int(entry.name)).startswith("ray::NodeWorker"):
            continue
        pid = int(entry.name)
        mine = {
            p
            for p in descendants(pid)
            if f"--entrypoint model:{function}" in cmdline(p) and alive(p)
        }
        if mine and alive(pid):
            found[pid] = (_parent(pid), mine)
    return found


def test_a_version_serves_from_actors_spread_over_the_nodes(
    server: RunningServer, tmp_path: Path
) -> None:
    publish(server, tmp_path, "hello", HELLO, extra_manifest=TWO_REPLICAS)
    with server.client() as admin:
        assert admin.model("admin/hello").call("Ray") == "Hello Ray"
    response = call(server, "/v1/algo/admin/hello", "Algorithmia")
    assert response.status_code == 200, response.text
    assert response.json()["result"] == "Hello Algorithmia"
    serving = actors("hello")
    assert len(serving) == 2, serving
    raylets = {raylet for raylet, _ in serving.values()}
    assert len(raylets) == 2, f"both replicas on one node: {serving}"
    assert workers(server) == set(), "a worker runs as the gateway's own child"


def test_a_model_on_ray_calls_another_model(server: RunningServer, tmp_path: Path) -> None:
    publish(server, tmp_path, "hello", HELLO)
    publish(server, tmp_path, "caller", CALLER)
    response = call(server, "/v1/algo/admin/caller", "world")
    assert response.status_code == 200, response.text
    assert response.json()["result"] == "via Ray: Hello world"
    assert actors("caller"), "the calling model does not run on Ray"


def _under_load(server: RunningServer, name: str, fault: Any) -> Tally:
    """Calls of a quarter second, eight at a time, while ``fault()`` strikes."""
    tally: list[Tally] = []

    def calls() -> None:
        tally.append(fire(server, f"/v1/algo/admin/{name}", [0.25] * 48, concurrency=8))

    load = threading.Thread(target=calls)
    load.start()
    wait_for(lambda: False, 1.0)
    fault()
    load.join(timeout=180)
    assert tally, "the calls did not finish"
    return tally[0]


@pytest.mark.parametrize("victim", ["worker", "actor"])
def test_a_replica_killed_under_calls_answers_coded_503s_and_comes_back(
    server: RunningServer, tmp_path: Path, victim: str
) -> None:
    name = f"sleeper_{victim}"
    publish(server, tmp_path, name, SLEEPER.format(name=name), extra_manifest=TWO_REPLICAS)
    assert call(server, f"/v1/algo/admin/{name}", 0).status_code == 200
    before = actors(name)
    assert len(before) == 2, before
    actor, (_, worker_pids) = sorted(before.items())[0]
    killed = actor if victim == "actor" else min(worker_pids)

    tally = _under_load(server, name, lambda: os.kill(killed, signal.SIGKILL))
    assert not tally.other, f"calls answered otherwise than 2xx or a coded 503: {tally}"
    assert set(tally.codes_503) <= {"worker_died"}, tally
    assert tally.ok > 0, tally

    def replaced() -> bool:
        now = actors(name)
        pids = {p for _, mine in now.values() for p in mine}
        return len(now) == 2 and killed not in now and killed not in pids

    assert wait_for(replaced, BACK_WITHIN, step=0.5) is not None, actors(name)
    after = call(server, f"/v1/algo/admin/{name}", 0)
    assert after.status_code == 200, after.text


def test_a_node_killed_under_calls_loses_only_its_calls_and_its_replicas_move(
    server: RunningServer, ray_cluster: RayCluster, tmp_path: Path
) -> None:
    """Last in this module: it leaves the cluster with its head alone."""
    name = "sleeper_node"
    publish(server, tmp_path, name, SLEEPER.format(name=name), extra_manifest=TWO_REPLICAS)
    assert call(server, f"/v1/algo/admin/{name}", 0).status_code == 200
    node = ray_cluster.processes[1]
    node_processes = {node.pid, *descendants(node.pid)}
    before = actors(name)
    assert len({raylet for raylet, _ in before.values()}) == 2, before

    def kill_the_node() -> None:
        for pid in node_processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    tally = _under_load(server, name, kill_the_node)
    assert not tally.other, f"calls answered otherwise than 2xx or a coded 503: {tally}"
    assert set(tally.codes_503) <= {"worker_died"}, tally

    def moved() -> bool:
        now = actors(name)
        return len(now) == 2 and not node_processes & {raylet for raylet, _ in now.values()}

    assert wait_for(moved, BACK_WITHIN, step=0.5) is not None, actors(name)
    after = call(server, f"/v1/algo/admin/{name}", 0)
    assert after.status_code == 200, after.text
