"""``ALGORA_LOG_FORMAT=json``: one JSON object per log line, with the request being served."""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

from algora.gateway.auditing import CURRENT_TRAIL, AuditTrail
from algora.gateway.logformat import JsonFormatter
from algora.testing import RunningServer, write_model

TEXT_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")


def test_a_line_carries_the_request_being_served() -> None:
    record = logging.LogRecord("algora.x", logging.WARNING, __file__, 1, "slow %s", ("call",), None)
    token = CURRENT_TRAIL.set(
        AuditTrail(action="model.call", resource="acme/m", version="1.0.0", request_id="r-1")
    )
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        CURRENT_TRAIL.reset(token)
    assert line["level"] == "WARNING" and line["logger"] == "algora.x"
    assert line["message"] == "slow call"
    assert (line["request_id"], line["model"], line["version"]) == ("r-1", "acme/m", "1.0.0")
    assert line["time"].endswith("Z")
    outside = json.loads(JsonFormatter().format(record))
    assert "request_id" not in outside


def test_the_server_logs_json_lines(tmp_path: Path) -> None:
    env = {"ALGORA_LOG_FORMAT": "json", "ALGORA_POOL_IDLE_SECONDS": "1"}
    with RunningServer(tmp_path / "data", env=env) as server:
        folder = write_model(tmp_path / "echo", "echo", "def apply(x):\n    return x\n")
        with server.client() as admin:
            admin.publish(folder)
            assert admin.model("admin/echo").call("hi") == "hi"
        deadline = time.monotonic() + 30
        while "idle pool" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        lines = server.log().splitlines()
    logged = [json.loads(line) for line in lines if line.startswith("{")]
    assert any(
        entry["logger"] == "algora.workers.manager" and "idle pool" in entry["message"]
        for entry in logged
    ), lines
    assert not [line for line in lines if TEXT_LOG_LINE.match(line)]
