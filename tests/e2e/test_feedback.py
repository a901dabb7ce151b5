"""Ground-truth feedback and alias comparisons on a running server: a version that records its
calls is scored by the feedback sent for them (accuracy for labels, mean absolute error for
values) in the statistics, in /metrics and in the comparison of an alias's primary with its
canary and shadow; every bad input gets a clear 4xx, through the API, the SDK and the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from algora.errors import (
    AliasNotFound,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from algora.sdk.client import Client
from algora.testing import RunningServer, write_model

from ..helpers import algora, new_users

SIGN = "def apply(input: float) -> dict:\n    return {{'label': {rule}, 'score': 0.5}}\n"
FIRST = SIGN.format(rule="'pos' if input > 0 else 'neg'")
ALWAYS_POS = SIGN.format(rule="'pos'")
DOUBLE = "def apply(input: float) -> float:\n    return input * 2\n"
HUGE = "def apply(input: float) -> str:\n    return 'x' * 10000\n"
RECORDS = "\n[monitoring]\nfeedback = true\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """admin/sign 1.0.0 (right), 1.1.0 (always "pos"), 1.2.0 (right again) record their calls;
    admin/double 1.0.0 records, admin/quiet does not; admin/huge answers past the cap."""
    root = tmp_path_factory.mktemp("feedback")
    with RunningServer(root / "data") as running, running.client() as admin:
        for version, code in (("1.0.0", FIRST), ("1.1.0", ALWAYS_POS), ("1.2.0", FIRST)):
            write_model(root / "sign", "sign", code, extra_manifest=RECORDS)
            admin.publish(root / "sign", version=version)
        admin.publish(write_model(root / "double", "double", DOUBLE, extra_manifest=RECORDS))
        admin.publish(write_model(root / "quiet", "quiet", DOUBLE))
        admin.publish(write_model(root / "huge", "huge", HUGE, extra_manifest=RECORDS))
        yield running


def _request_id(admin: Client, ref: str, data: Any) -> str:
    answer = admin.model(ref).call_full(data)
    assert answer.request_id
    return answer.request_id


def _metrics(server: RunningServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    scraped = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Simple {server.key}"})
    assert scraped.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped.text)
        if family.name.startswith("algora_feedback")
        for sample in family.samples
    }


def _counted(admin: Client, calls: int) -> dict[str, Any]:
    """The report of ``live`` once its versions' calls are counted (every few seconds)."""
    for _ in range(300):
        report = admin.compare_alias("admin/sign", "live", since="1h")
        sides = (report["primary"], *report["others"])
        if sum(side["calls"] for side in sides if side["role"] != "shadow") >= calls:
            return report
        time.sleep(0.1)
    raise AssertionError(f"the calls were never counted: {report}")


def test_feedback_scores_labels_and_values_once(server: RunningServer) -> None:
    with server.client() as admin:
        right = admin.feedback(_request_id(admin, "admin/sign/1.0.0", 1.5), label="pos")
        wrong = admin.feedback(_request_id(admin, "admin/sign/1.0.0", -1), label="pos")
        regression = admin.feedback(_request_id(admin, "admin/double", 2), value=3.5)
        with pytest.raises(Conflict, match="feedback is final"):
            admin.feedback(right["request_id"], label="neg")
        too_big = admin.feedback(_request_id(admin, "admin/huge", 1), label="x")
        stats = admin.stats("admin/sign", since="1h", version="1.0.0")
    assert (right["version"], right["scored"], right["correct"]) == ("1.0.0", True, True)
    assert (wrong["correct"], wrong["abs_error"]) == (False, None)
    assert (regression["correct"], regression["abs_error"]) == (None, pytest.approx(0.5))
    assert (too_big["scored"], too_big["correct"]) == (False, None)
    [version] = stats["versions"]
    assert (version["total"]["scored"], version["total"]["accuracy"]) == (2, 0.5)
    assert sum(point["scored"] for point in version["points"]) == 2
    labels = (("alias", ""), ("model", "admin/sign"), ("version", "1.0.0"))
    kind = (("alias", ""), ("kind", "label"), ("model", "admin/sign"), ("version", "1.0.0"))
    scraped = _metrics(server)
    assert scraped["algora_feedback_scored_total", kind] == 2
    assert scraped["algora_feedback_correct_total", labels] == 1
    double = (("alias", ""), ("model", "admin/double"), ("version", "1.0.0"))
    assert scraped["algora_feedback_absolute_error_total", double] == pytest.approx(0.5)


def test_bad_feedback_is_refused_clearly(server: RunningServer) -> None:
    with server.client() as admin:
        with pytest.raises(NotFound, match="no recorded call has request id 'req-nothing'"):
            admin.feedback("req-nothing", label="pos")
        quiet = _request_id(admin, "admin/quiet", 1)
        with pytest.raises(NotFound, match=r"\[monitoring\] feedback = true"):
            admin.feedback(quiet, value=2)
        known = _request_id(admin, "admin/sign/1.0.0", 1)
        with pytest.raises(InvalidInput, match="either label or value"):
            admin.feedback(known, label=None, value=None)
        body = {"request_id": known, "label": 1, "value": 1}
        both = admin.request("POST", "/api/v1/feedback", json=body)
        assert both.status_code == 400 and both.json()["error"]["code"] == "invalid_input"
        keys = new_users(admin, "stranger")
        scoped = admin.request(
            "POST", "/api/v1/keys", json={"name": "reader", "scopes": ["models:read"]}
        )
        other_models = admin.request(
            "POST", "/api/v1/keys", json={"name": "other", "scopes": ["call:admin/double"]}
        )
    refusals = (
        (keys["stranger"], NotFound, "no recorded call"),  # may not see admin/sign at all
        (scoped.json()["key"], PermissionDenied, "call"),  # no call scope
        (other_models.json()["key"], PermissionDenied, "call scope does not cover"),
    )
    for key, error, message in refusals:
        with Client(server.url, key) as caller, pytest.raises(error, match=message):
            caller.feedback(known, label="pos")
    with server.client() as admin:  # none of those refusals took the call's one feedback
        assert admin.feedback(known, label="pos")["correct"] is True


def test_an_alias_is_compared_with_its_canary_and_shadow(server: RunningServer) -> None:
    with server.client() as admin:
        admin.set_alias("admin/sign", "live", weights={"1.0.0": 50, "1.1.0": 50}, shadow="1.2.0")
        served: dict[str, int] = {}
        wrong = 0  # 1.1.0 says "pos" to a negative input: wrong, and unlike the shadow
        for number in range(40):
            data = number - 20 + 0.5
            answer = admin.model("admin/sign/live").call_full(data)
            served[str(answer.version)] = served.get(str(answer.version), 0) + 1
            wrong += answer.version == "1.1.0" and data < 0
            assert answer.request_id is not None
            admin.feedback(answer.request_id, label="pos" if data > 0 else "neg")
        report = _counted(admin, 40)
        stats = admin.stats("admin/sign", since="1h")
        with pytest.raises(AliasNotFound, match="no alias 'nowhere'"):
            admin.compare_alias("admin/sign", "nowhere")
        admin.set_alias("admin/sign", "single", "1.0.0")
        with pytest.raises(InvalidInput, match="nothing to compare"):
            admin.compare_alias("admin/sign", "single")
    primary, others = report["primary"], {side["role"]: side for side in report["others"]}
    assert (primary["version"], primary["role"], primary["weight"]) == ("1.0.0", "primary", 50)
    assert primary["scored"] == served["1.0.0"] and primary["accuracy"] == 1.0
    canary, shadow = others["canary"], others["shadow"]
    assert (canary["version"], canary["weight"], canary["agreement"]) == ("1.1.0", 50, None)
    assert canary["scored"] == served["1.1.0"]
    assert canary["accuracy"] == pytest.approx(1 - wrong / served["1.1.0"])
    assert (shadow["version"], shadow["weight"]) == ("1.2.0", None)
    # the shadow answers as 1.0.0 does: it disagrees only where the canary was wrong
    assert shadow["compared"] == 40 and shadow["scored"] == 40
    assert shadow["agreement"] == pytest.approx(1 - wrong / 40)
    assert shadow["accuracy"] == 1.0
    assert primary["calls"] >= served["1.0.0"] and canary["calls"] >= served["1.1.0"]
    assert primary["p99_ms"] is not None and primary["error_rate"] == 0.0
    [live] = [row for row in stats["aliases"] if row["alias"] == "live"]
    assert live["total"]["scored"] == 40
    assert live["total"]["accuracy"] == pytest.approx(1 - wrong / 40)


def test_the_cli_sends_feedback_and_compares(server: RunningServer) -> None:
    with server.client() as admin:
        admin.set_alias("admin/sign", "cli", weights={"1.0.0": 90, "1.1.0": 10})
        admin.set_alias("admin/sign", "solo", "1.1.0")
        known = _request_id(admin, "admin/sign/cli", 3)
    sent = algora("feedback", known, "--label", "pos", "--json", server=server)
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["scored"] is True
    again = algora("feedback", known, "--label", "pos", server=server)
    assert again.returncode == 1 and "feedback is final" in again.stderr
    neither = algora("feedback", known, server=server)
    assert neither.returncode == 1 and "--label or --value" in neither.stderr
    table = algora("alias", "compare", "admin/sign", "cli", "--since", "1h", server=server)
    assert table.returncode == 0, table.stderr
    assert "primary (90%)" in table.stdout and "canary (10%)" in table.stdout
    unknown = algora("feedback", "req-unknown", "--value", "1", server=server)
    assert unknown.returncode == 1 and "no recorded call" in unknown.stderr
    stats = algora("stats", "admin/sign", "--since", "1h", server=server)
    assert stats.returncode == 0 and "alias cli: 100.0% (1 scored)" in stats.stdout, stats.stdout
    single = algora("alias", "compare", "admin/sign", "solo", server=server)
    assert single.returncode == 1 and "nothing to compare" in single.stderr
