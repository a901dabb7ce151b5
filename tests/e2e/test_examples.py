"""The shipped examples, published by `algora serve --examples` on a real server process."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from algora.modelfolder.layouts import find_manifest, has_manifest
from algora.testing import RunningServer

from ..helpers import REPO

EXAMPLES = REPO / "examples"
NAMES = tuple(
    sorted(
        find_manifest(folder).manifest.model.name
        for folder in EXAMPLES.iterdir()
        if has_manifest(folder)  # algora.toml, or Algorithmia's algorithmia.conf (adk-hello)
    )
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    data = tmp_path_factory.mktemp("examples") / "data"
    with RunningServer(data, args=("--examples", str(EXAMPLES))) as running:
        headers = {"Authorization": f"Simple {running.key}"}
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            versions = {}
            for name in NAMES:
                response = httpx.get(
                    f"{running.url}/api/v1/models/admin/{name}/versions", headers=headers
                )
                versions[name] = response.json() if response.status_code == 200 else []
            statuses = {n: [v["status"] for v in vs] for n, vs in versions.items()}
            if all(s and s[0] != "building" for s in statuses.values()):
                break
            time.sleep(1)
        assert all(s == ["ready"] for s in statuses.values()), (statuses, running.log())
        yield running


def call(server: RunningServer, ref: str, data):
    with server.client() as client:
        return client.model(ref).call_full(data)


def test_conflicting_dependencies_serve_side_by_side(server: RunningServer) -> None:
    old = call(server, "admin/sklearn-old", [[0.1, 0.2], [3.0, 3.0]])
    new = call(server, "admin/sklearn-new", [[0.1, 0.2], [3.0, 3.0]])
    assert old.result["sklearn_version"] == "1.5.2"
    assert new.result["sklearn_version"] == "1.7.2"
    assert len(old.result["prediction"]) == 2


def test_iris_was_trained_at_publish_and_predicts(server: RunningServer) -> None:
    setosa = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    answer = call(server, "admin/iris/1.x", setosa)
    assert answer.result["species"] == "setosa"
    assert answer.content_type == "json"
    assert call(server, "admin/iris", [6.7, 3.0, 5.2, 2.3]).result["species"] == "virginica"
    with server.client() as client:
        schema = client.get_json("/api/v1/models/admin/iris/versions/1.0.0/schema")
    features, as_list = schema["input"]["anyOf"]
    assert features["title"] == "IrisFeatures" and "petal_width" in features["required"]
    assert as_list == {"type": "array", "items": {"type": "number"}}
    assert schema["output"]["properties"]["species"]["enum"] == [
        "setosa",
        "versicolor",
        "virginica",
    ]


def test_identical_locks_share_one_environment(server: RunningServer) -> None:
    with server.client() as client:
        iris = client.version("admin/iris", "1.0.0")
        new = client.version("admin/sklearn-new", "1.0.0")
        old = client.version("admin/sklearn-old", "1.0.0")
        lock = client.request("GET", "/api/v1/models/admin/sklearn-old/versions/1.0.0/lock").text
    assert iris["environment_hash"] == new["environment_hash"] != old["environment_hash"]
    assert "scikit-learn==1.5.2" in lock and "--hash=sha256:" in lock
    envs = {p.name for p in (server.data_dir / "envs").iterdir() if not p.name.startswith(".")}
    with server.client() as client:
        used = {client.version(f"admin/{name}", "1.0.0")["environment_hash"] for name in NAMES}
    used.remove(None)  # sklearn-pipeline's: a pipeline has none, its steps have theirs
    assert envs == used  # one environment per distinct lock, none built twice
    # iris and sklearn-new share theirs, and hello and compare-votes (no dependencies) theirs
    assert len(used) == len(NAMES) - 3


def test_the_pipeline_composes_conflicting_environments(server: RunningServer) -> None:
    points = [[0.1, 0.2], [3.0, 3.0]]
    answer = call(server, "admin/sklearn-pipeline", points)
    assert answer.result == {
        "prediction": [0, 1],
        "agree": True,
        "sklearn_versions": ["1.5.2", "1.7.2"],
    }
    algorithmia = httpx.post(
        f"{server.url}/v1/algo/admin/sklearn-pipeline/1.x",
        json=points,
        headers={"Authorization": f"Simple {server.key}"},
    )
    assert algorithmia.json()["result"] == answer.result


def test_hello_answers_the_pasted_curl(server: RunningServer) -> None:
    response = httpx.post(
        f"{server.url}/v1/algo/admin/hello/latest",
        content=b"world",
        headers={"Authorization": f"Simple {server.key}", "Content-Type": "text/plain"},
    )
    assert response.json()["result"] == "Hello world"


def test_iris_tensors_answers_every_api(server: RunningServer) -> None:
    """The tensors example over the native SDK and Algorithmia's route (JSON in, JSON out),
    and over the Open Inference Protocol (the curl of docs/calling.md)."""
    virginica = [[6.7, 3.0, 5.2, 2.3]]
    answer = call(server, "admin/iris-tensors", virginica)
    assert answer.result["species"] == ["virginica"]
    assert len(answer.result["probabilities"][0]) == 3
    auth = {"Authorization": f"Simple {server.key}"}
    algorithmia = httpx.post(
        f"{server.url}/v1/algo/admin/iris-tensors/1.0.0", json=virginica, headers=auth
    )
    assert algorithmia.json()["result"]["species"] == ["virginica"]
    v2 = httpx.post(
        f"{server.url}/v2/models/admin/iris-tensors/infer",
        json={
            "id": "q1",
            "inputs": [
                {"name": "features", "datatype": "FP32", "shape": [1, 4], "data": virginica[0]}
            ],
            "outputs": [{"name": "species"}],
        },
        headers=auth,
    )
    assert v2.json() == {
        "model_name": "admin/iris-tensors",
        "model_version": "1.0.0",
        "id": "q1",
        "outputs": [{"name": "species", "datatype": "BYTES", "shape": [1], "data": ["virginica"]}],
    }
