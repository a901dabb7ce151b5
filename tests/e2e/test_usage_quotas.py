"""Usage and quotas on a running server: calls and compute counted per organization, principal,
key and model; who may read what; quotas that refuse past their budget with a 429 naming the
quota and its reset, set and removed by admins; over HTTP, the SDK and the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from algora.errors import InvalidInput, NotFound, PermissionDenied, QuotaExceeded
from algora.sdk.client import Client
from algora.testing import RunningServer, write_model

from ..conftest import ECHO_MODEL
from ..helpers import algora, new_users

SPIN_MODEL = """
import time


def apply(input):
    end = time.process_time() + float(input)
    while time.process_time() < end:
        pass
    return "spun"
"""


@dataclass
class Team:
    server: RunningServer
    keys: dict[str, str]
    """ana (the org's admin), bob (in no org), bot (the org's service account)."""


def _post(server: RunningServer, key: str, path: str, body: dict[str, object]) -> httpx.Response:
    headers = {"Authorization": f"Simple {key}"}
    return httpx.request("POST", f"{server.url}{path}", json=body, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    root = tmp_path_factory.mktemp("usage")
    echo = write_model(root / "echo", "echo", ECHO_MODEL, entrypoint="model:Echo")
    spin = write_model(root / "spin", "spin", SPIN_MODEL, entrypoint="model:apply")
    with RunningServer(root / "data") as server, server.client() as admin:
        for folder in (echo, spin):
            admin.publish(folder)
        for model in ("echo", "spin"):
            admin.request("PATCH", f"/api/v1/models/admin/{model}", json={"visibility": "public"})
        keys = new_users(admin, "ana", "bob")
        assert _post(server, server.key, "/api/v1/orgs", {"name": "team"}).status_code == 201
        member = admin.request("PUT", "/api/v1/orgs/team/members/ana", json={"role": "admin"})
        assert member.status_code in (200, 201), member.text
        bot = _post(
            server, server.key, "/api/v1/service-accounts", {"name": "bot", "owner": "team"}
        )
        assert bot.status_code == 201, bot.text
        key = _post(server, server.key, "/api/v1/keys", {"principal": "bot", "scopes": ["call"]})
        assert key.status_code == 201, key.text
        keys["bot"] = key.json()["key"]
        yield Team(server, keys)


def _client(team: Team, who: str) -> Client:
    return team.server.client(team.keys[who])


def _wait_for(read: object, predicate: object, seconds: float = 15.0) -> object:
    """The usage is written every 5 s: poll until ``predicate(read())``."""
    deadline = time.monotonic() + seconds
    while True:
        value = read()  # type: ignore[operator]
        if predicate(value) or time.monotonic() > deadline:  # type: ignore[operator]
            return value
        time.sleep(0.5)


def test_calls_and_compute_are_counted_and_each_reads_only_their_own(team: Team) -> None:
    with _client(team, "bot") as bot, _client(team, "bob") as bob:
        for word in ("a", "b", "c"):
            bot.model("admin/echo").call(word)
        bot.model("admin/spin").call(0.2)  # 0.2 s of CPU in the worker
        bob.model("admin/echo").call("x")
    with team.server.client() as admin:
        report = _wait_for(
            lambda: admin.usage(by="org", since="1h"),
            lambda r: sum(row["calls"] for row in r["rows"]) >= 5,
        )
    assert isinstance(report, dict)
    rows = {row["group"]: row for row in report["rows"]}
    assert rows["team"]["calls"] == 4 and rows["-"]["calls"] == 1
    assert 0.15 <= rows["team"]["compute_seconds"] < 2.0  # the spin's CPU, and a little more
    with team.server.client() as admin:
        by_model = {row["group"]: row for row in admin.usage(by="model", since="1h")["rows"]}
    assert by_model["admin/echo"]["calls"] == 4 and by_model["admin/spin"]["calls"] == 1
    with _client(team, "ana") as ana:  # the org's admin: the org's usage, not bob's
        groups = {row["group"] for row in ana.usage(by="principal", since="1h")["rows"]}
    assert groups == {"bot"}
    with _client(team, "bob") as bob:
        mine = bob.usage(by="principal", since="1h")["rows"]
    assert [(row["group"], row["calls"]) for row in mine] == [("bob", 1)]


def test_a_quota_refuses_past_its_budget_naming_it_and_its_reset(team: Team) -> None:
    with team.server.client() as admin:
        used = sum(
            row["calls"]
            for row in admin.usage(by="org", since="1d")["rows"]
            if row["group"] == "team"
        )
        quota = admin.set_quota(org="team", metric="calls", period="day", limit=used + 2)
    try:
        assert quota["org"] == "team" and quota["used"] >= used
        with _client(team, "bot") as bot:
            for word in ("d", "e"):
                bot.model("admin/echo").call(word)
            with pytest.raises(QuotaExceeded) as refused:
                bot.model("admin/echo").call("f")
        details = refused.value.details
        assert details["quota"] == quota["id"] and details["subject"] == "team"
        assert (details["metric"], details["period"]) == ("calls", "day")
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
        assert details["resets_at"] == f"{tomorrow}T00:00:00Z"
        raw = httpx.post(
            f"{team.server.url}/v1/algo/admin/echo",
            json="g",
            headers={"Authorization": f"Simple {team.keys['bot']}"},
        )
        assert raw.status_code == 429, raw.text
        assert raw.json()["error"]["code"] == "quota_exceeded"
        assert 0 < int(raw.headers["Retry-After"]) <= 86400
        with _client(team, "bob") as bob:  # not of the organization: not limited
            bob.model("admin/echo").call("still")
        with _client(team, "ana") as ana:
            [seen] = ana.quotas()
        assert seen["id"] == quota["id"] and seen["used"] >= seen["limit"]
        with _client(team, "bob") as bob:
            assert bob.quotas() == []
    finally:
        with team.server.client() as admin:
            admin.delete_quota(quota["id"])
    with _client(team, "bot") as bot:
        bot.model("admin/echo").call("free again")


def test_a_compute_quota_of_a_key(team: Team) -> None:
    with _client(team, "bob") as bob:
        key_id = bob.whoami()["key_id"]
    with team.server.client() as admin:
        quota = admin.set_quota(key_id=key_id, metric="compute_seconds", period="month", limit=0.1)
    try:
        with _client(team, "bob") as bob:
            bob.model("admin/spin").call(0.3)  # admitted: the budget is not spent yet
            with pytest.raises(QuotaExceeded, match=r"0\.1 compute seconds per month"):
                bob.model("admin/spin").call(0.3)
    finally:
        with team.server.client() as admin:
            admin.delete_quota(quota["id"])


def test_only_admins_manage_quotas_and_bad_input_is_a_clear_4xx(team: Team) -> None:
    with _client(team, "ana") as ana, pytest.raises(PermissionDenied, match="only an admin"):
        ana.set_quota(org="team", metric="calls", period="day", limit=5)
    with team.server.client() as admin:
        day = {"metric": "calls", "period": "day", "limit": 5}
        for path, body, status, problem in (
            ("org/nope", day, 404, "nope"),
            ("key/nope", day, 404, "nope"),
            ("planet/team", day, 400, "kind"),
            ("org/team", {**day, "period": "week"}, 400, "period"),
            ("org/team", {**day, "limit": 0}, 400, "limit"),
        ):
            answer = admin.request("PUT", f"/api/v1/quotas/{path}", json=body)
            assert answer.status_code == status, (path, body, answer.text)
            assert problem in json.dumps(answer.json()["error"]), answer.text
        with pytest.raises(InvalidInput, match="name one"):
            admin.set_quota(metric="calls", period="day", limit=5)
        with pytest.raises(NotFound, match="quota #999"):
            admin.delete_quota(999)
        bad = admin.request("GET", "/api/v1/usage", params={"by": "planet"})
        assert bad.status_code == 400


def test_the_cli_prints_usage_and_manages_quotas(team: Team) -> None:
    table = algora("usage", "--by", "model", "--since", "1d", server=team.server)
    assert table.returncode == 0, table.stderr
    assert "admin/echo" in table.stdout and "compute" in table.stdout
    made = algora("quota", "set", "calls", "month", "1000", "--org", "team", server=team.server)
    assert made.returncode == 0, made.stderr
    listed = algora("quota", "list", "--json", server=team.server)
    [row] = json.loads(listed.stdout)
    assert (row["org"], row["metric"], row["period"], row["limit"]) == (
        "team",
        "calls",
        "month",
        1000,
    )
    gone = algora("quota", "delete", str(row["id"]), server=team.server)
    assert gone.returncode == 0, gone.stderr
    with _client(team, "bob") as bob:
        key_id = bob.whoami()["key_id"]
    by_key = algora("quota", "set", "calls", "day", "5", "--key-id", key_id, server=team.server)
    assert by_key.returncode == 0, by_key.stderr
    [row] = json.loads(algora("quota", "list", "--json", server=team.server).stdout)
    assert (row["key_id"], row["limit"]) == (key_id, 5)
    assert algora("quota", "delete", str(row["id"]), server=team.server).returncode == 0
    refused = algora("usage", "--by", "planet", server=team.server)
    assert refused.returncode != 0 and "--by" in refused.stderr
