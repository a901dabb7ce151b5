"""A version's workers start as soon as its publish succeeds: its first call finds them loaded."""

from __future__ import annotations

import time
from pathlib import Path

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
        started = time.monotonic()
        response = gw.http.post("/v1/algo/admin/echo", json="hi", headers=gw.auth)
        assert response.status_code == 200, response.text
        assert response.json()["result"] == {"echo": "hi", "loads": 1}
        assert time.monotonic() - started < 0.5  # no cold start
        assert response.headers["x-algora-version"] == published["version"]


def test_it_can_be_turned_off(tmp_path: Path) -> None:
    with in_process(tmp_path / "data", warm_on_publish=False) as gw:
        gw.client.publish(
            write_model(tmp_path / "echo", "echo", ECHO_MODEL, entrypoint="model:Echo")
        )
        platform: Platform = gw.http.app.state.platform  # type: ignore[attr-defined]
        time.sleep(1.0)
        assert platform.pools.pools() == {}
