"""``ALGORA_METRICS_ENABLED=false``: requests and model calls are no longer counted, while
``/metrics`` still answers with what it reads when scraped (the samples' counters among it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from algora.testing import write_model

from ..conftest import HELLO_MODEL, in_process


def _names(text: str) -> set[str]:
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


@pytest.mark.parametrize("enabled", [True, False])
def test_metrics_off_counts_no_request(tmp_path: Path, enabled: bool) -> None:
    with in_process(tmp_path / "data", metrics_enabled=enabled) as gw:
        gw.client.publish(write_model(tmp_path / "hello", "hello", HELLO_MODEL))
        called = gw.http.post("/v1/algo/admin/hello", json="x", headers=gw.auth)
        assert called.status_code == 200, called.text
        scraped = gw.http.get("/metrics", headers=gw.auth)
        assert scraped.status_code == 200, scraped.text
        names = _names(scraped.text)
        assert {"algora_samples_stored_total", "algora_samples_dropped_total"} <= names
        assert ("algora_model_calls_total" in names) is enabled
        assert ("algora_requests_total" in names) is enabled
