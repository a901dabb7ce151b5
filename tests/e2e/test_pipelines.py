"""The sklearn-pipeline example on a real server: published with the CLI, called over every API.

``algora serve`` runs as its own process; the CLI (a subprocess) publishes the three steps,
whose dependencies conflict (scikit-learn 1.5.2, scikit-learn 1.7.2, the standard library
only), and then the pipeline; the CLI, the SDK and a plain HTTP client call it. bob, another
user, may call the pipeline but not the private step it uses until its owner grants it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from algora.testing import RunningServer

from ..helpers import REPO, algora, new_users

pytestmark = pytest.mark.slow

EXAMPLES = REPO / "examples"
STEPS = ("sklearn-old", "sklearn-new", "pipeline-compare")
POINTS = [[0.1, 0.2], [3.0, 3.0]]
EXPECTED = {"prediction": [0, 1], "agree": True, "sklearn_versions": ["1.5.2", "1.7.2"]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with RunningServer(tmp_path_factory.mktemp("pipelines") / "data") as running:
        for folder in (*STEPS, "pipeline-sklearn"):
            done = algora("publish", str(EXAMPLES / folder), "--quiet", server=running)
            assert done.returncode == 0, done.stdout + done.stderr + running.log()
        yield running


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Simple {key}"}


def test_the_cli_publishes_and_calls_the_pipeline(server: RunningServer) -> None:
    called = algora("call", "admin/sklearn-pipeline", json.dumps(POINTS), server=server)
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout) == EXPECTED
    with server.client() as client:
        version = client.version("admin/sklearn-pipeline", "1.0.0")
        assert client.model("admin/sklearn-pipeline/1.x").call(POINTS) == EXPECTED
    assert version["status"] == "ready" and version["environment_hash"] is None


def test_algorithmia_calls_are_audited_step_by_step(server: RunningServer) -> None:
    answer = httpx.post(
        f"{server.url}/v1/algo/admin/sklearn-pipeline", json=POINTS, headers=auth(server.key)
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"] == EXPECTED
    request_id = answer.headers["X-Request-Id"]
    events = httpx.get(
        f"{server.url}/api/v1/audit", params={"limit": 50}, headers=auth(server.key)
    ).json()
    steps = {e["resource"]: e for e in events if e["parent_request_id"] == request_id}
    assert sorted(steps) == ["admin/compare-votes", "admin/sklearn-new", "admin/sklearn-old"]
    assert {(e["action"], e["status"], e["version"]) for e in steps.values()} == {
        ("model.call", 200, "1.0.0")
    }
    assert [e["resource"] for e in events if e["request_id"] == request_id] == [
        "admin/sklearn-pipeline"
    ]


def test_a_private_step_is_refused_by_name_until_granted(server: RunningServer) -> None:
    with server.client() as admin:
        bob = new_users(admin, "bob")["bob"]
        for name in ("sklearn-pipeline", "sklearn-new", "compare-votes"):
            admin.request("PATCH", f"/api/v1/models/admin/{name}", json={"visibility": "public"})
    url = f"{server.url}/v1/algo/admin/sklearn-pipeline"
    refused = httpx.post(url, json=POINTS, headers=auth(bob))
    assert refused.status_code == 403, refused.text
    message = refused.json()["error"]["message"]
    assert "step 'old'" in message and "admin/sklearn-old" in message
    granted = algora("models", "grant", "admin/sklearn-old", "bob", server=server)
    assert granted.returncode == 0, granted.stdout + granted.stderr
    assert httpx.post(url, json=POINTS, headers=auth(bob)).json()["result"] == EXPECTED
