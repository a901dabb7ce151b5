"""Drift on a running server: a version published with a reference file, called with one
feature shifted, shows ``alert`` on that feature and ``ok`` on the unshifted one, through the
API, the SDK, the CLI and /metrics; a version without drift, or a bad reference, gets a clear
4xx saying what to do."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from algora.errors import InvalidManifest, NotFound
from algora.sdk.client import Client
from algora.testing import RunningServer, write_model

from ..helpers import algora

CODE = (
    "def apply(input: dict) -> dict:\n    return {'label': 'big' if input['x'] > 50 else 'small'}\n"
)
COLORS = ("red", "green", "blue")
DRIFT = '\n[monitoring]\ndrift = true\ndrift_reference = "reference.jsonl"\n'

FIRST_CALLS = "\n[monitoring]\ndrift = true\ndrift_reference_calls = 10\n"


def _reference() -> str:
    lines = []
    for i in range(300):
        given = {"x": i % 100, "color": COLORS[i % 3]}
        lines.append({"input": given, "output": {"label": "big" if i % 100 > 50 else "small"}})
    return "\n".join(json.dumps(line) for line in lines) + "\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """admin/shifty 1.0.0 has drift on, from reference.jsonl; admin/learner from its first 10
    calls; admin/plain has none."""
    root = tmp_path_factory.mktemp("drift")
    with RunningServer(root / "data") as running, running.client() as admin:
        files = {"reference.jsonl": _reference()}
        admin.publish(
            write_model(root / "shifty", "shifty", CODE, extra_manifest=DRIFT, files=files)
        )
        admin.publish(write_model(root / "plain", "plain", CODE))
        learner = write_model(root / "learner", "learner", CODE, extra_manifest=FIRST_CALLS)
        admin.publish(learner)
        yield running


def _counted(admin: Client, calls: int, model: str = "admin/shifty") -> dict[str, Any]:
    """The drift of ``model`` once its calls are counted (every few seconds)."""
    for _ in range(300):
        drift = admin.drift(model, since="1h")
        if drift["calls"] >= calls:
            return drift
        time.sleep(0.1)
    raise AssertionError(f"the calls were never counted: {drift}")


def test_a_shifted_feature_alerts_and_an_unshifted_one_stays_ok(server: RunningServer) -> None:
    with server.client() as admin:
        handle = admin.model("admin/shifty/1.0.0")
        for i in range(30):
            handle.call({"x": 150 + i, "color": COLORS[i % 3]})
        drift = _counted(admin, 30)
    assert (drift["model"], drift["version"], drift["reference"]) == (
        "admin/shifty",
        "1.0.0",
        "file",
    )
    assert (drift["reference_size"], drift["calls"], drift["status"]) == (300, 30, "alert")
    features = {row["feature"]: row for row in drift["features"]}
    assert set(features) == {"input.x", "input.color", "output.label"}
    assert (features["input.x"]["status"], features["input.x"]["window_n"]) == ("alert", 30)
    assert features["input.x"]["psi"] > 0.25 and features["input.x"]["kind"] == "numeric"
    assert features["input.color"]["status"] == "ok" and features["input.color"]["psi"] < 0.1
    assert features["output.label"]["status"] == "alert"
    scraped = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Simple {server.key}"})
    gauge = 'algora_drift_psi{feature="input.x",model="admin/shifty",version="1.0.0"}'
    assert gauge in scraped.text

    shown = algora("drift", "admin/shifty", "--since", "1h", server=server)
    assert shown.returncode == 0, shown.stderr
    rows = {line.split()[1]: line for line in shown.stdout.splitlines() if "input." in line}
    assert "alert" in rows["input.x"] and "ok" in rows["input.color"]
    as_json = algora("drift", "admin/shifty", "--version", "1.0.0", "--json", server=server)
    assert json.loads(as_json.stdout)["status"] == "alert"


def test_no_drift_or_a_bad_reference_is_refused_clearly(
    server: RunningServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with server.client() as admin:
        with pytest.raises(NotFound, match=r"no drift monitoring: add \[monitoring\] drift = true"):
            admin.drift("admin/plain")
        with pytest.raises(NotFound, match=r"has no version '9\.9\.9'"):
            admin.drift("admin/shifty", version="9.9.9")
        bad = admin.request("GET", "/api/v1/models/admin/shifty/drift", params={"since": "soon"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_input"
        until = {"since": "1h", "until": "2h"}
        backwards = admin.request("GET", "/api/v1/models/admin/shifty/drift", params=until)
        assert backwards.status_code == 400 and "since must come before" in backwards.text
        folder = tmp_path_factory.mktemp("bad") / "broken"
        files = {"reference.jsonl": '{"x": 1}\nnot json\n'}
        write_model(folder, "broken", CODE, extra_manifest=DRIFT, files=files)
        with pytest.raises(InvalidManifest, match=r"'reference\.jsonl' line 2 is not JSON"):
            admin.publish(folder)
    shown = algora("drift", "admin/plain", server=server)
    assert shown.returncode != 0 and "drift = true" in shown.stderr + shown.stdout


def test_the_first_calls_make_the_reference(server: RunningServer) -> None:
    with server.client() as admin:
        pending = admin.drift("admin/learner")
        assert (pending["reference"], pending["features"]) == ("pending", [])
        handle = admin.model("admin/learner")
        for i in range(10):  # the reference
            handle.call({"x": i, "color": "red"})
        for i in range(10):  # live, x shifted
            handle.call({"x": 500 + i, "color": "red"})
        drift = _counted(admin, 10, "admin/learner")
    assert (drift["reference"], drift["reference_size"], drift["calls"]) == ("calls", 10, 10)
    features = {row["feature"]: row["status"] for row in drift["features"]}
    assert features == {"input.x": "alert", "input.color": "ok", "output.label": "alert"}
