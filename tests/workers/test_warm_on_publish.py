"""A version's workers start as soon as its publish succeeds: its first call finds them loaded."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from algora.errors import AlgoraError
from algora.platform import Platform
from algora.testing import write_model

from ..conftest import ECHO_MODEL, in_process


def test_the_first_call_after_publish_finds_its_workers_loaded(tmp_path: Path) -> None:
    with in_process(tmp_path / "data", warm_on_publish=True) as gw:
        published = gw.client.publish(
            write_model(tmp_path / "echo", "echo", ECHO_MODEL, entrypoint="model:Echo")
        )
        platform: Platform = gw.http.app.state.platform  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while not platform.pools.pools() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(platform.pools.pools()) != [], "no workers were started at publish"
        (warm,) = platform.pools.pools().values()
        response = gw.http.post("/v1/algo/admin/echo", json="hi", headers=gw.auth)
        assert response.status_code == 200, response.text
        assert response.json()["result"] == {"echo": "hi", "loads": 1}
        assert list(platform.pools.pools().values()) == [warm]  # no cold start
        assert response.headers["x-algora-version"] == published["version"]


def test_it_can_be_turned_off(tmp_path: Path) -> None:
    with in_process(tmp_path / "data", warm_on_publish=False) as gw:
        gw.client.publish(
            write_model(tmp_path / "echo", "echo", ECHO_MODEL, entrypoint="model:Echo")
        )
        platform: Platform = gw.http.app.state.platform  # type: ignore[attr-defined]
        time.sleep(1.0)
        assert platform.pools.pools() == {}


COUNTER_MODEL = """
import os

calls = 0


def apply(input):
    global calls
    calls += 1
    if input == "fail":
        raise ValueError("the example fails")
    return {"calls": calls, "pid": os.getpid()}
"""


def test_the_worker_that_passed_the_smoke_test_answers_the_first_call(tmp_path: Path) -> None:
    with in_process(tmp_path / "data", warm_on_publish=True) as gw:
        folder = write_model(
            tmp_path / "counter",
            "counter",
            COUNTER_MODEL,
            example='input = "example"',
            extra_manifest="\n[serving]\nreplicas = 2\n",
        )
        gw.client.publish(folder)
        response = gw.http.post("/v1/algo/admin/counter", json="hi", headers=gw.auth)
        assert response.status_code == 200, response.text
        # the example was its first call: no second worker loaded the model for this one
        assert response.json()["result"]["calls"] == 2
        platform: Platform = gw.http.app.state.platform  # type: ignore[attr-defined]
        (pool,) = platform.pools.pools().values()
        deadline = time.monotonic() + 30
        while pool.stats().alive < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.stats().alive == 2  # the manifest's replicas, once handed over


def test_a_failed_smoke_test_leaves_no_worker_behind(tmp_path: Path) -> None:
    with in_process(tmp_path / "data", warm_on_publish=True) as gw:
        folder = write_model(tmp_path / "bad", "bad", COUNTER_MODEL, example='input = "fail"')
        with pytest.raises(AlgoraError, match="the example fails"):
            gw.client.publish(folder)
        platform: Platform = gw.http.app.state.platform  # type: ignore[attr-defined]
        assert platform.pools.pools() == {}


def test_an_alias_moves_to_a_version_only_once_its_workers_are_loaded(tmp_path: Path) -> None:
    with in_process(tmp_path / "data", warm_on_publish=True, pool_idle_seconds=1.0) as gw:
        folder = write_model(tmp_path / "counter", "counter", COUNTER_MODEL)
        first = gw.client.publish(folder)
        platform: Platform = gw.http.app.state.platform  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while platform.pools.pools() and time.monotonic() < deadline:
            time.sleep(0.05)  # the idle pool stops
        assert platform.pools.pools() == {}
        response = gw.http.put(
            "/api/v1/models/admin/counter/aliases/production",
            json={"version": first["version"]},
            headers=gw.auth,
        )
        assert response.status_code == 200, response.text
        assert [pool.running for pool in platform.pools.pools().values()] == [True]
