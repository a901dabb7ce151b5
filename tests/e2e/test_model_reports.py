"""What models report about their calls, on a running server: a model posts named numbers as
Algorithmia's ``report_insights`` does (to ``$ALGORITHM_QUEUE_READER_URL/insights``, no key);
they are aggregated per version and name and read over HTTP, the SDK and the CLI; bad reports
are refused, and the route is not there from outside a worker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import algora
from algora.testing import RunningServer, write_model

from ..helpers import algora as algora_cli

REPORTER = """
import json
import os
import urllib.error
import urllib.request


def apply(input):
    request = urllib.request.Request(
        os.environ["ALGORITHM_QUEUE_READER_URL"] + "/insights",
        data=json.dumps(input).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return {"status": answer.status}
    except urllib.error.HTTPError as refused:
        return {"status": refused.code, "error": json.loads(refused.read())["error"]}
"""


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("reports")
    folder = write_model(root / "reporter", "reporter", REPORTER, entrypoint="model:apply")
    with RunningServer(root / "data") as server:
        with server.client() as admin:
            admin.publish(folder)
        yield server


def _reports(server: RunningServer) -> dict[str, Any]:
    """The reports of the last hour, once the gateway wrote them (every 5 s)."""
    deadline = time.monotonic() + 15
    with server.client() as admin:
        while True:
            answer = admin.reports("admin/reporter", since="1h")
            if answer["series"] or time.monotonic() > deadline:
                return answer
            time.sleep(0.5)


def test_reports_are_aggregated_per_version_and_name(reported: RunningServer) -> None:
    with reported.client() as admin:
        model = admin.model("admin/reporter")
        assert model.call({"confidence": 0.5}) == {"status": 204}
        assert model.call({"confidence": 0.9, "faces": 3}) == {"status": 204}
    answer = _reports(reported)
    series = {(row["version"], row["name"]): row for row in answer["series"]}
    assert set(series) == {("1.0.0", "confidence"), ("1.0.0", "faces")}
    confidence = series[("1.0.0", "confidence")]["total"]
    assert confidence["count"] == 2
    assert confidence["mean"] == pytest.approx(0.7)
    assert (confidence["min"], confidence["max"]) == (0.5, 0.9)
    assert series[("1.0.0", "faces")]["total"]["count"] == 1
    assert sum(p["count"] for p in series[("1.0.0", "confidence")]["points"]) == 2


def test_bad_reports_are_refused_to_the_model(reported: RunningServer) -> None:
    with reported.client() as admin:
        model = admin.model("admin/reporter")
        for bad, problem in (
            ({"a name with spaces": 1}, "not a report name"),
            ({"score": "high"}, "finite number"),
            ({"score": True}, "finite number"),
            ({f"n{i}": 1 for i in range(51)}, ""),
        ):
            answer = model.call(bad)
            assert answer["status"] == 400, answer
            assert problem in answer["error"]["message"]
        too_many = model.call({f"name{i}": 1 for i in range(49)})  # 2 names used already
        assert too_many["status"] == 400 and "at most 50 names" in too_many["error"]["message"]


def test_from_outside_a_worker_the_route_is_not_there(reported: RunningServer) -> None:
    url = f"{reported.url}/insights"
    stranger = httpx.post(url, json={"x": 1})
    assert stranger.status_code == 401
    admin = httpx.post(url, json={"x": 1}, headers={"Authorization": f"Simple {reported.key}"})
    assert admin.status_code == 404, admin.text
    assert "only on a worker's channel" in admin.json()["error"]["message"]
    assert algora.report("x", 1.0) is False  # no call to report about here


def test_the_cli_prints_the_reports(reported: RunningServer) -> None:
    _reports(reported)
    table = algora_cli("reports", "admin/reporter", "--since", "1h", server=reported)
    assert table.returncode == 0, table.stderr
    assert "confidence" in table.stdout and "faces" in table.stdout
    missing = algora_cli("reports", "admin/nope", server=reported)
    assert missing.returncode != 0 and "nope" in missing.stderr
