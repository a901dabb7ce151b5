"""Alerts on a running server: a rule on a failing model's error rate fires, its delivery
reaches a real webhook receiver on 127.0.0.1 signed, is retried after the receiver's 500, every
try is kept and audited; bad rules are refused with 4xx; the CLI manages rules."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from algora.errors import ModelError
from algora.registry.alert_checks import verify
from algora.testing import RunningServer, write_model

from ..conftest import ECHO_MODEL
from ..helpers import algora, new_users

SECRET = "a-test-signing-secret-0123456789"


class Receiver:
    """A webhook on 127.0.0.1 that answers its first ``failures`` posts with 500."""

    def __init__(self, failures: int) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((dict(self.headers), body))
                failing = len(receiver.posts) <= receiver.failures
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """admin/echo 1.0.0 on a server that evaluates alerts twice a second and retries fast."""
    root = tmp_path_factory.mktemp("alerts")
    folder = write_model(root / "echo", "echo", ECHO_MODEL, entrypoint="model:Echo")
    env = {"ALGORA_ALERT_INTERVAL_SECONDS": "0.5", "ALGORA_ALERT_RETRY_SECONDS": "0.2"}
    with RunningServer(root / "data", env=env) as server, server.client() as admin:
        admin.publish(folder)
        yield server


def _wait(what: str, check: Any, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no {what} in {seconds} s")


def test_a_failing_model_fires_a_signed_retried_audited_delivery(served: RunningServer) -> None:
    with Receiver(failures=1) as receiver, served.client() as admin:
        added = admin.add_alert(
            "admin/echo", signal="error_rate", threshold=0.5, window="5m",
            webhook=receiver.url, min_calls=3, secret=SECRET,
        )  # fmt: skip
        rule = added["rule"]
        assert added["secret"] == SECRET and rule["state"] == "ok"
        admin.model("admin/echo").call("fine")
        for _ in range(3):
            with pytest.raises(ModelError):
                admin.model("admin/echo").call("boom")
        _wait("second post", lambda: len(receiver.posts) >= 2)
        [(_, first), (headers, body)] = receiver.posts[:2]
        assert first == body  # a retry sends the same bytes
        assert verify(SECRET, body, headers["X-Algora-Signature"])
        assert not verify("another-secret-of-enough-length", body, headers["X-Algora-Signature"])
        assert headers["X-Algora-Timestamp"].isdigit()
        sent = json.loads(body)
        assert sent["state"] == "firing" and sent["signal"] == "error_rate"
        assert sent["model"] == "admin/echo" and sent["threshold"] == 0.5
        assert sent["value"] == pytest.approx(0.75) and sent["calls"] == 4
        assert sent["delivery_id"] == headers["X-Algora-Delivery"]
        delivered = _wait(
            "delivered delivery",
            lambda: [
                d for d in admin.alert_deliveries("admin/echo", rule["id"])
                if d["status"] == "delivered"
            ],
        )  # fmt: skip
        [delivery] = delivered
        assert delivery["delivery_id"] == sent["delivery_id"] and delivery["tries"] == 2
        assert [a["status_code"] for a in delivery["attempts"]] == [500, 204]
        [listed] = admin.alerts("admin/echo")
        assert listed["state"] == "firing" and listed["last_count"] >= 4
        time.sleep(2)  # still firing: no repeat
        assert len(receiver.posts) == 2
        events = admin.get_json("/api/v1/audit", request_id=sent["delivery_id"])
        assert sorted(e["status"] for e in events) == [204, 500]
        assert {e["action"] for e in events} == {"alert.deliver"}
        admin.delete_alert("admin/echo", rule["id"])
        assert admin.alerts("admin/echo") == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"signal": "mood"}, "unknown signal"),
        ({"webhook": "ftp://example.com/hook"}, "http"),
        ({"webhook": "file:///etc/passwd"}, "http"),
        ({"threshold": "high"}, "threshold"),
        ({"window": "2d"}, "window"),
        ({"comparison": "near"}, "comparison"),
        ({"version": "1.0.0", "alias": "prod"}, "not both"),
        ({"secret": "short"}, "secret"),
        ({"extra": 1}, "extra"),
    ],
)
def test_bad_rules_are_refused_with_4xx(
    served: RunningServer, change: dict[str, Any], problem: str
) -> None:
    body = {"signal": "error_rate", "comparison": "above", "threshold": 0.1, "window": "5m",
            "webhook": "https://hooks.example.com/x", **change}  # fmt: skip
    answer = httpx.post(
        f"{served.url}/api/v1/models/admin/echo/alerts",
        json=body,
        headers={"Authorization": f"Simple {served.key}"},
    )
    assert 400 <= answer.status_code < 500, answer.text
    assert problem in json.dumps(answer.json()).lower()


def test_only_managers_see_rules_and_unknown_rules_are_404(served: RunningServer) -> None:
    with served.client() as admin:
        keys = new_users(admin, "alex")
        rule = admin.add_alert(
            "admin/echo", signal="p95_ms", threshold=100, window="1h",
            webhook="https://hooks.example.com/x",
        )["rule"]  # fmt: skip
    auth = {"Authorization": f"Simple {keys['alex']}"}
    base = f"{served.url}/api/v1/models/admin/echo/alerts"
    assert httpx.get(base, headers=auth).status_code in (403, 404)
    assert httpx.delete(f"{base}/{rule['id']}", headers=auth).status_code in (403, 404)
    admin_auth = {"Authorization": f"Simple {served.key}"}
    assert httpx.get(f"{base}/999999/deliveries", headers=admin_auth).status_code == 404
    assert httpx.delete(f"{base}/{rule['id']}", headers=admin_auth).status_code == 204


def test_the_cli_adds_lists_and_deletes_rules(served: RunningServer) -> None:
    added = algora(
        "alert", "add", "admin/echo", "--signal", "error_rate", "--above", "0.05",
        "--window", "5m", "--webhook", "https://hooks.example.com/x", "--json", server=served,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    rule = json.loads(added.stdout)["rule"]
    assert rule["comparison"] == "above" and rule["threshold"] == 0.05
    listed = algora("alert", "list", "admin/echo", "--json", server=served)
    assert rule["id"] in [r["id"] for r in json.loads(listed.stdout)]
    shown = algora("alert", "deliveries", "admin/echo", str(rule["id"]), "--json", server=served)
    assert json.loads(shown.stdout) == []
    gone = algora("alert", "delete", "admin/echo", str(rule["id"]), server=served)
    assert gone.returncode == 0 and "deleted" in gone.stdout
    refused = algora(
        "alert", "add", "admin/echo", "--signal", "error_rate", "--window", "5m",
        "--webhook", "https://hooks.example.com/x", server=served,
    )  # fmt: skip
    assert refused.returncode != 0 and "--above or --below" in refused.stderr + refused.stdout
