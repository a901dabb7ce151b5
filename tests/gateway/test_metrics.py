"""``GET /metrics``: Prometheus' text format, parsed by prometheus-client's own parser, from a
running server; and a real Prometheus scraping it with a key."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from algora.testing import RunningServer, free_port, stop_process, write_model

MODEL = """
def apply(input):
    if input == "boom":
        raise ValueError("boom")
    return input
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("metrics")
    with RunningServer(tmp / "data") as running:
        batched = "\n[serving]\nmax_batch_size = 8\n"  # plain apply, looped in batches
        with running.client() as admin:
            admin.publish(write_model(tmp / "echo", "echo", MODEL, extra_manifest=batched))
            admin.set_alias("admin/echo", "production", "1.0.0")
        yield running


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return found[name, tuple(sorted(labels.items()))]


def scrape(server: RunningServer, key: str | None = None) -> httpx.Response:
    return httpx.get(
        f"{server.url}/metrics", headers={"Authorization": f"Bearer {key or server.key}"}
    )


def test_calls_are_counted_by_model_version_and_outcome(server: RunningServer) -> None:
    auth = {"Authorization": f"Simple {server.key}"}
    for _ in range(3):
        assert httpx.post(f"{server.url}/v1/algo/admin/echo", json="hi", headers=auth).is_success
    failed = httpx.post(f"{server.url}/v1/algo/admin/echo/1.0.0", json="boom", headers=auth)
    assert failed.json()["error"]["error_type"] == "ValueError"  # 200, in Algorithmia's envelope
    via_alias = httpx.post(f"{server.url}/v1/algo/admin/echo/production", json=1, headers=auth)
    assert via_alias.is_success
    for name in ("nobody/nothing", "admin/no-such-model"):
        assert httpx.post(f"{server.url}/v1/algo/{name}", json=1, headers=auth).status_code == 404
    response = scrape(server)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    echo = {"model": "admin/echo", "version": "1.0.0"}
    assert value(found, "algora_model_calls_total", **echo, alias="", outcome="ok") == 3
    assert value(found, "algora_model_calls_total", **echo, alias="", outcome="model_error") == 1
    assert value(found, "algora_model_calls_total", **echo, alias="production", outcome="ok") == 1
    assert value(found, "algora_model_call_duration_seconds_count", **echo, alias="") == 4
    # calls that reached no version carry no name a caller chose
    unresolved = {"model": "", "version": "", "alias": "", "outcome": "model_not_found"}
    assert value(found, "algora_model_calls_total", **unresolved) == 2
    assert not any("nothing" in str(labels) for _, labels in found)
    assert value(found, "algora_requests_total", action="model.call", status="200") == 5
    assert value(found, "algora_pool_replicas", **echo) == 1
    assert value(found, "algora_pool_queued_calls", **echo) == 0
    assert value(found, "algora_pool_starts_total", **echo) >= 1
    assert value(found, "algora_worker_resident_memory_bytes", **echo) > 1 << 20
    # reported; it may round to 0 (clock ticks): a worker forked from its zygote does not pay
    # for the interpreter's start, and five calls of this model take well under a tick
    cpu = ("algora_worker_cpu_seconds_total", tuple(sorted(echo.items())))
    assert cpu in found, sorted(key for key in found if "cpu" in key[0])
    # five calls, one at a time: five dispatches of one (a smoke test's example before them)
    assert value(found, "algora_batch_size_bucket", **echo, le="1.0") >= 5
    assert value(found, "algora_batch_size_bucket", **echo, le="+Inf") >= 5
    assert 0 <= value(found, "algora_audit_commit_lag_seconds") < 60
    assert found["process_resident_memory_bytes", ()] > 1 << 20  # the gateway itself


def test_openmetrics_on_request(server: RunningServer) -> None:
    response = httpx.get(
        f"{server.url}/metrics",
        headers={
            "Authorization": f"Bearer {server.key}",
            "Accept": "application/openmetrics-text; version=1.0.0",
        },
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


def test_only_keys_with_metrics_read_may_scrape(server: RunningServer) -> None:
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    admin = {"Authorization": f"Simple {server.key}"}
    made = httpx.post(f"{server.url}/api/v1/keys", json={"scopes": ["call"]}, headers=admin)
    assert made.status_code == 201, made.text
    refused = scrape(server, made.json()["key"])
    assert refused.status_code == 403
    assert "metrics:read" in refused.json()["error"]["message"]
    scraper = httpx.post(
        f"{server.url}/api/v1/keys", json={"scopes": ["metrics:read"]}, headers=admin
    )
    assert scraper.status_code == 201, scraper.text
    assert scrape(server, scraper.json()["key"]).status_code == 200


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="no prometheus (Debian package)")
def test_a_real_prometheus_scrapes_the_gateway(server: RunningServer, tmp_path: Path) -> None:
    auth = {"Authorization": f"Simple {server.key}"}
    assert httpx.post(f"{server.url}/v1/algo/admin/echo", json="p", headers=auth).is_success
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: algora\n"
        f"    authorization: {{credentials: {server.key}}}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n"
    )
    with (tmp_path / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        query = 'algora_model_calls_total{model="admin/echo",outcome="ok"}'
        deadline = time.monotonic() + 60
        result: list[dict[str, object]] = []
        while not result and time.monotonic() < deadline:
            time.sleep(1)
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": query})
            except httpx.TransportError:
                continue
            if answer.status_code == 200:
                result = answer.json()["data"]["result"]
        assert result, (tmp_path / "prometheus.log").read_text()[-2000:]
        assert float(json.dumps(result[0]["value"][1]).strip('"')) >= 1
        targets = httpx.get(f"http://127.0.0.1:{port}/api/v1/targets").json()
        (target,) = targets["data"]["activeTargets"]
        assert target["health"] == "up", target
    finally:
        stop_process(process)
