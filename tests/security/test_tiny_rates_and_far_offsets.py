"""Two 500s that schemathesis's random runs found: a rate limit of 5e-324 calls/s (an infinite
wait) and a build-log offset far past the file's end."""

from __future__ import annotations

from pathlib import Path

from algora.testing import write_model

from ..conftest import in_process


def test_a_vanishing_rate_limit_refuses_with_a_finite_wait(tmp_path: Path) -> None:
    with in_process(tmp_path / "data") as gw:
        gw.client.publish(write_model(tmp_path / "m", "m", "def apply(x):\n    return x\n"))
        made = gw.http.post("/api/v1/keys", json={"scopes": ["call"]}, headers=gw.auth)
        assert made.status_code == 201, made.text
        key_id, key = made.json()["key_id"], made.json()["key"]
        limited = gw.http.patch(
            f"/api/v1/keys/{key_id}",
            json={"rate_per_second": 5e-324, "burst": 1},
            headers=gw.auth,
        )
        assert limited.status_code == 200, limited.text
        mine = {"Authorization": f"Simple {key}"}
        calls = [gw.http.post("/v1/algo/admin/m", json=1, headers=mine) for _ in range(3)]
        statuses = [call.status_code for call in calls]
        assert 429 in statuses and 500 not in statuses, statuses
        refused = gw.http.post("/v1/algo/admin/m", json=1, headers=mine)
        assert refused.status_code == 429
        assert "retry in 31536000.00 s" in refused.json()["error"]["message"]
        assert int(refused.headers["retry-after"]) == 365 * 86400


def test_a_build_log_offset_past_its_end_reads_nothing(tmp_path: Path) -> None:
    with in_process(tmp_path / "data") as gw:
        gw.client.publish(write_model(tmp_path / "m", "m", "def apply(x):\n    return x\n"))
        url = "/api/v1/models/admin/m/versions/1.0.0/log"
        far = gw.http.get(url, params={"offset": 43468150296907}, headers=gw.auth)
        assert far.status_code == 200, far.text
