"""``algora sampling`` and ``algora samples`` as a subprocess against a real server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from algora.testing import RunningServer, write_model

from ..helpers import algora

_MODEL = 'def apply(input: dict) -> dict:\n    return {"seen": input}\n'


def test_sampling_set_show_list_read_and_off(server: RunningServer, tmp_path: Path) -> None:
    folder = write_model(tmp_path / "sampled", "sampled", _MODEL, example="input = { a = 1 }")
    published = algora("publish", str(folder), server=server)
    assert published.returncode == 0, published.stdout + published.stderr
    assert (
        algora("sampling", "show", "admin/sampled", server=server)
        .stdout.strip()
        .endswith("sampling is off")
    )
    rule = algora(
        "sampling", "set", "admin/sampled", "--rate", "1", "--max-bytes", "4096",
        "--redact", "ssn", "--redact", "email", "--json", server=server,
    )  # fmt: skip
    assert rule.returncode == 0, rule.stderr
    assert json.loads(rule.stdout)["redact"] == ["email", "ssn"]
    shown = algora("sampling", "show", "admin/sampled", server=server)
    assert "sampling 1 of calls" in shown.stdout and "email, ssn" in shown.stdout
    headers = {"Authorization": f"Simple {server.key}", "X-Request-Id": "req-cli-sampled"}
    body = {"user": {"ssn": "123-45-6789", "email": "x@y.z"}, "n": 1}
    called = httpx.post(f"{server.url}/v1/algo/admin/sampled", json=body, headers=headers)
    assert called.status_code == 200, called.text
    deadline = time.monotonic() + 60  # the server writes its samples every few seconds
    while True:
        listed = algora("samples", "admin/sampled", "--since", "1h", "--json", server=server)
        assert listed.returncode == 0, listed.stderr
        if any(s["request_id"] == "req-cli-sampled" for s in json.loads(listed.stdout)):
            break
        assert time.monotonic() < deadline, listed.stdout
        time.sleep(0.5)
    table = algora("samples", "admin/sampled", server=server)
    assert "req-cli-sampled" in table.stdout
    read = algora("samples", "admin/sampled", "req-cli-sampled", server=server)
    assert read.returncode == 0, read.stderr
    stored = json.loads(read.stdout)
    assert stored["input"]["data"] == {"user": {"ssn": "[redacted]", "email": "[redacted]"}, "n": 1}
    assert "123-45-6789" not in read.stdout and "123-45-6789" not in server.log()
    assert algora("sampling", "off", "admin/sampled", server=server).returncode == 0
    assert "sampling is off" in algora("sampling", "show", "admin/sampled", server=server).stdout
    refused = algora("sampling", "set", "admin/sampled", "--rate", "2", server=server)
    assert refused.returncode != 0 and "rate" in (refused.stdout + refused.stderr)
