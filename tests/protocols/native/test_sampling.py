"""Payload sampling over the native API, on each database: a model's managers set its rule,
its calls are sampled (redacted, cut at the cap) and read back; others are refused."""

from __future__ import annotations

from typing import Any

from algora.platform import Platform

from ...conftest import InProcess
from ...helpers import new_users

SAMPLING = "/api/v1/models/admin/echo/sampling"
SAMPLES = "/api/v1/models/admin/echo/samples"


def _platform(gw: InProcess) -> Platform:
    platform: Platform = gw.http.app.state.platform  # type: ignore[attr-defined]
    return platform


def _call(gw: InProcess, body: Any, request_id: str) -> None:
    headers = {**gw.auth, "X-Request-Id": request_id}
    answer = gw.http.post("/v1/algo/admin/echo", json=body, headers=headers)
    assert answer.status_code == 200, answer.text


def _samples(gw: InProcess, **params: Any) -> list[dict[str, Any]]:
    _platform(gw).sampler.write()
    answer = gw.http.get(SAMPLES, headers=gw.auth, params=params)
    assert answer.status_code == 200, answer.text
    listed: list[dict[str, Any]] = answer.json()
    return listed


def test_sampling_is_off_by_default_and_samples_nothing(published: InProcess) -> None:
    rule = published.http.get(SAMPLING, headers=published.auth)
    assert rule.status_code == 404, rule.text  # no rule: not sampled
    assert rule.json()["error"]["details"] == {"sampling": "off"}
    _call(published, "unsampled", "req-unsampled")
    assert all(s["request_id"] != "req-unsampled" for s in _samples(published))


def test_a_bad_rule_is_refused_with_an_error_body(published: InProcess) -> None:
    for body in ({"rate": 0}, {"rate": 1.5}, {"max_bytes": 0}, {"redact": [""]}, {"x": 1}):
        answer = published.http.put(SAMPLING, json=body, headers=published.auth)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"]["code"] == "invalid_input"


def test_sampled_calls_are_redacted_cut_and_read_by_the_owner(published: InProcess) -> None:
    rule = {"rate": 1.0, "max_bytes": 200, "redact": ["ssn", "email"]}
    answer = published.http.put(SAMPLING, json=rule, headers=published.auth)
    assert answer.status_code == 200, answer.text
    assert answer.json()["redact"] == ["email", "ssn"]
    secret = {"person": {"ssn": "123-45-6789", "tags": [{"email": "a@b.c"}]}, "keep": 1}
    _call(published, secret, "req-sampled")
    _call(published, "x" * 1000, "req-large")
    listed = {s["request_id"]: s for s in _samples(published)}
    assert listed["req-sampled"]["version"] == "1.0.0"
    assert listed["req-sampled"]["truncated"] is False
    assert listed["req-large"]["truncated"] is True
    assert listed["req-large"]["input_bytes"] == 1002
    read = published.http.get(f"{SAMPLES}/req-sampled", headers=published.auth)
    assert read.status_code == 200, read.text
    stored = read.json()
    assert stored["input"]["data"] == {
        "person": {"ssn": "[redacted]", "tags": [{"email": "[redacted]"}]},
        "keep": 1,
    }
    assert "123-45-6789" not in read.text and "a@b.c" not in read.text
    assert stored["output"]["data"]["echo"]["person"]["ssn"] == "[redacted]"
    large = published.http.get(f"{SAMPLES}/req-large", headers=published.auth).json()
    assert large["input"]["truncated"] is True and len(large["input"]["data"]) <= 200
    off = published.http.delete(SAMPLING, headers=published.auth)
    assert off.status_code == 204, off.text
    _call(published, "after", "req-after")
    assert all(s["request_id"] != "req-after" for s in _samples(published))


def test_only_the_models_managers_read_samples(published: InProcess) -> None:
    keys = new_users(published.client, "sampling-stranger")
    stranger = {"Authorization": f"Simple {keys['sampling-stranger']}"}
    assert published.http.get(SAMPLES, headers=stranger).status_code == 404  # private model
    grant = {"right": "call"}
    granted = published.http.put(
        "/api/v1/models/admin/echo/grants/sampling-stranger", json=grant, headers=published.auth
    )
    assert granted.status_code < 300, granted.text
    for path in (SAMPLES, f"{SAMPLES}/req-sampled", SAMPLING):
        refused = published.http.get(path, headers=stranger)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.json()["error"]["code"] == "permission_denied"
    put = published.http.put(SAMPLING, json={"rate": 1.0}, headers=stranger)
    assert put.status_code == 403, put.text


def test_an_unknown_sample_is_404(published: InProcess) -> None:
    answer = published.http.get(f"{SAMPLES}/req-never", headers=published.auth)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
