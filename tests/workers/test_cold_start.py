"""A version whose workers are slow to load: the call's timeout covers the cold start."""

from __future__ import annotations

import time
from pathlib import Path

from starlette.testclient import TestClient

from algora.app import create_app
from algora.platform import Platform
from algora.sdk.client import Client
from algora.settings import Settings
from algora.testing import write_model

SLOW_SECOND_LOAD = """
import os, pathlib, time

class Slow:
    def load(self) -> None:
        counter = pathlib.Path(os.environ["HOME"], "loads")
        loads = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(loads + 1))
        if loads >= 1:  # the smoke test's load is quick; serving loads hang
            time.sleep(60)

    def predict(self, input: str) -> str:
        return input
"""


def test_cold_start_counts_against_the_call_timeout(tmp_path: Path) -> None:
    platform = Platform.open(Settings(data_dir=tmp_path / "data", worker_start_timeout=3))
    with TestClient(create_app(platform=platform)) as http:
        key = (tmp_path / "data" / "admin.key").read_text().strip()
        client = Client("http://testserver", key, http=http)
        folder = write_model(
            tmp_path / "slow",
            "slow",
            SLOW_SECOND_LOAD,
            entrypoint="model:Slow",
            example='text = "x"',
        )
        client.publish(folder)
        headers = {"Authorization": f"Simple {key}", "Content-Type": "text/plain"}
        started = time.monotonic()
        response = http.post("/v1/algo/admin/slow?timeout=1", content=b"x", headers=headers)
        assert response.status_code == 504, response.text
        assert "still loading" in response.json()["error"]["message"]
        assert time.monotonic() - started < 2.5
        time.sleep(3)  # the background start gives up after worker_start_timeout
        failed = http.post("/v1/algo/admin/slow?timeout=10", content=b"x", headers=headers)
        assert failed.status_code == 503, failed.text
        assert failed.json()["error"]["code"] == "unavailable"
        assert "could not be loaded" in failed.json()["error"]["message"]
    platform.engine.dispose()
