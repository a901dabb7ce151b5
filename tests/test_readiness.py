"""/readyz tells the truth: not ready while the registry or the store cannot be reached."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from algora.app import create_app
from algora.platform import Platform
from algora.settings import Settings


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[TestClient, Platform]]:
    platform = Platform.open(Settings(data_dir=tmp_path / "data"))
    with TestClient(create_app(platform=platform)) as http:
        yield http, platform
    platform.engine.dispose()


def test_ready_when_everything_answers(platform) -> None:
    http, _ = platform
    assert http.get("/readyz").json() == {"status": "ready"}


def test_not_ready_while_the_registry_is_unreachable(platform) -> None:
    http, plat = platform
    database = plat.settings.resolved_data_dir / "registry.db"
    aside = database.with_suffix(".aside")
    plat.engine.dispose()
    database.rename(aside)
    database.mkdir()  # a directory where the database file was: every connection fails
    try:
        response = http.get("/readyz")
        assert response.status_code == 503
        assert "registry database unreachable" in response.json()["problems"]
        assert http.get("/healthz").status_code == 200
    finally:
        database.rmdir()
        aside.rename(database)
        plat.engine.dispose()
    assert http.get("/readyz").status_code == 200


def test_not_ready_while_the_store_is_unreachable(platform) -> None:
    http, plat = platform
    blobs = plat.settings.resolved_data_dir / "blobs"
    aside = blobs.with_name("blobs.aside")
    blobs.rename(aside)
    blobs.write_text("not a directory")
    try:
        response = http.get("/readyz")
        assert response.status_code == 503
        assert response.json()["problems"] == ["artifact store unreachable"]
    finally:
        blobs.unlink()
        aside.rename(blobs)
    assert http.get("/readyz").status_code == 200


def test_not_ready_while_a_pool_has_no_live_worker(platform, tmp_path: Path) -> None:
    from algora.sdk.client import Client
    from algora.testing import write_model

    http, plat = platform
    key = (plat.settings.resolved_data_dir / "admin.key").read_text().strip()
    client = Client("http://testserver", key, http=http)
    folder = write_model(
        tmp_path / "flaky",
        "flaky",
        "import os, pathlib\n"
        "MARK = pathlib.Path(os.environ['HOME'], 'broken')\n"
        "if MARK.exists():\n"
        "    raise RuntimeError('cannot start while broken')\n"
        "def apply(input: str) -> str:\n"
        "    if input == 'break':\n"
        "        MARK.write_text('x')\n"
        "        os._exit(1)\n"
        "    return input\n",
        example='text = "ok"',
    )
    client.publish(folder)
    assert client.model("admin/flaky").call("ok") == "ok"
    assert http.get("/readyz").status_code == 200
    headers = {"Authorization": f"Simple {key}", "Content-Type": "text/plain"}
    broken = http.post("/v1/algo/admin/flaky", content=b"break", headers=headers)
    assert broken.status_code == 503
    marks = list((plat.settings.resolved_data_dir / "homes").glob("*/broken"))
    assert len(marks) == 1

    response = wait_for_status(http, 503, seconds=20)
    assert any("no live worker" in problem for problem in response.json()["problems"])
    marks[0].unlink()  # the fault goes away: the pool's restarts succeed again
    wait_for_status(http, 200, seconds=60)
    assert client.model("admin/flaky").call("again") == "again"


def wait_for_status(http: TestClient, status: int, seconds: float):
    deadline = time.monotonic() + seconds
    while True:
        response = http.get("/readyz")
        if response.status_code == status or time.monotonic() > deadline:
            assert response.status_code == status, response.text
            return response
        time.sleep(0.2)
