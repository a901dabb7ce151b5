"""Built-in statistics on a running server: calls counted per version, kept across a graceful
restart (written at shutdown, before the periodic write), read over HTTP, the SDK and the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from algora.errors import InvalidInput, ModelError, ModelNotFound, VersionNotFound
from algora.testing import RunningServer, write_model

from ..conftest import ECHO_MODEL
from ..helpers import algora, new_users


@pytest.fixture(scope="module")
def counted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """admin/echo 1.0.0 called 5 times and failing twice; the server then stopped at once and
    started again on the same data."""
    root = tmp_path_factory.mktemp("stats")
    folder = write_model(root / "echo", "echo", ECHO_MODEL, entrypoint="model:Echo")
    server = RunningServer(root / "data")
    with server, server.client() as admin:
        admin.publish(folder)
        for word in ("a", "b", "c"):
            admin.model("admin/echo").call(word)
        for _ in range(2):
            with pytest.raises(ModelError, match="boom"):
                admin.model("admin/echo").call("boom")
    with server:  # the periodic write (every 5 s) may not have run: the shutdown wrote them
        yield server


def test_calls_are_counted_per_version_and_survive_a_restart(counted: RunningServer) -> None:
    with counted.client() as admin:
        answer = admin.stats("admin/echo", since="1h")
    assert answer["model"] == "admin/echo" and answer["step"] == "1m"
    [version] = answer["versions"]
    total = version["total"]
    assert version["version"] == "1.0.0"
    assert (total["calls"], total["errors"], total["model_errors"]) == (5, 2, 2)
    assert total["error_rate"] == pytest.approx(0.4)
    assert 0 < total["p50_ms"] <= total["p95_ms"] <= total["p99_ms"]
    assert total["bytes_in"] > 0 and total["bytes_out"] > 0
    assert sum(point["calls"] for point in version["points"]) == 5
    assert len(version["points"]) in (60, 61)  # every minute of the hour, the current one too


def test_bad_parameters_and_strangers_get_clear_errors(counted: RunningServer) -> None:
    with counted.client() as admin:
        keys = new_users(admin, "sam")
        for params, problem in (
            ({"step": "5m"}, "step"),
            ({"since": "yesterday"}, "not a time"),
            ({"since": "1h", "until": "2h"}, "since must come before until"),
            ({"since": "30d", "step": "1m"}, "narrow the window"),
        ):
            with pytest.raises(InvalidInput, match=problem):
                admin.stats("admin/echo", **params)
        with pytest.raises(VersionNotFound, match=r"no version '9\.9\.9'"):
            admin.stats("admin/echo", version="9.9.9")
    with counted.client(keys["sam"]) as sam, pytest.raises(ModelNotFound):
        sam.stats("admin/echo")
    raw = httpx.get(
        f"{counted.url}/api/v1/models/admin/echo/stats",
        params={"step": "1y"},
        headers={"Authorization": f"Simple {counted.key}"},
    )
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "invalid_input"


def test_the_cli_prints_a_table_and_json(counted: RunningServer, tmp_path: Path) -> None:
    table = algora("stats", "admin/echo", "--since", "2h", "--step", "1h", server=counted)
    assert table.returncode == 0, table.stderr
    assert "1.0.0" in table.stdout and "p99" in table.stdout
    row = next(line for line in table.stdout.splitlines() if "1.0.0" in line)
    assert "40.0%" in row
    as_json = algora("stats", "admin/echo", "--json", "--version", "1.0.0", server=counted)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["versions"][0]["total"]["calls"] == 5
    bad = algora("stats", "admin/echo", "--step", "2m", server=counted)
    assert bad.returncode == 1 and "step" in bad.stderr
