"""Aliases that move live traffic, on a running server: a weighted split sends calls to each of
its versions, a shadow gets a copy of each call whose answer (or failure) the caller never
sees, and the statistics and /metrics count them under the version that served them."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from algora.errors import AliasProtected, Conflict, InvalidInput
from algora.testing import RunningServer, write_model

from ..helpers import algora

ANSWER = 'def apply(input: str) -> str:\n    return "{answer}"\n'
FAILING = 'def apply(input: str) -> str:\n    raise ValueError("the shadow fails")\n'
CALLS = 200


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """admin/ab: 1.0.0 answers "one", 1.1.0 "two", 1.2.0 always fails; ``production`` is
    protected."""
    root = tmp_path_factory.mktemp("traffic")
    env = {"ALGORA_PROTECTED_ALIASES": '["production"]'}
    with RunningServer(root / "data", env=env) as running, running.client() as admin:
        for version, code in (
            ("1.0.0", ANSWER.replace("{answer}", "one")),
            ("1.1.0", ANSWER.replace("{answer}", "two")),
            ("1.2.0", FAILING),
        ):
            write_model(root / "ab", "ab", code)  # no example: 1.2.0 would fail it
            admin.publish(root / "ab", version=version)
        yield running


def _stats(server: RunningServer, until: int) -> dict[str, dict[str, Any]]:
    """Each version's totals, once the shadow has ``until`` calls counted (they are written
    every few seconds)."""
    with server.client() as admin:
        for _ in range(300):
            answer = admin.stats("admin/ab", since="1h")
            totals = {v["version"]: v["total"] for v in answer["versions"]}
            if totals.get("1.2.0", {}).get("calls", 0) >= until:
                return totals
            time.sleep(0.1)
    raise AssertionError(f"the shadow's calls were never counted: {totals}")


def test_a_split_reaches_each_version_and_the_shadow_stays_hidden(server: RunningServer) -> None:
    with server.client() as admin:
        moved = admin.set_alias("admin/ab", "canary", weights={"1.0": 1, "1.1": 1}, shadow="1.2")
    assert moved["alias"]["weights"] == {"1.0.0": 1, "1.1.0": 1}
    assert (moved["alias"]["version"], moved["alias"]["shadow"]) == ("1.0.0", "1.2.0")
    answers: Counter[tuple[int, str, str]] = Counter()
    with httpx.Client(headers={"Authorization": f"Simple {server.key}"}) as http:
        for _ in range(CALLS):
            response = http.post(f"{server.url}/v1/algo/admin/ab/canary", json="x")
            result = response.json().get("result", response.text)
            answers[response.status_code, result, response.headers["x-algora-version"]] += 1
    assert set(answers) == {(200, "one", "1.0.0"), (200, "two", "1.1.0")}
    # each share is 1/2: fewer than 20 % of 200 on either side has a chance below 1e-18
    assert min(answers.values()) >= CALLS // 5
    totals = _stats(server, CALLS)
    assert totals["1.0.0"]["calls"] + totals["1.1.0"]["calls"] == CALLS
    assert totals["1.0.0"]["errors"] == totals["1.1.0"]["errors"] == 0
    assert totals["1.2.0"]["calls"] == totals["1.2.0"]["model_errors"] == CALLS
    scraped = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Simple {server.key}"})
    [calls] = [
        f for f in text_string_to_metric_families(scraped.text) if f.name == "algora_model_calls"
    ]
    shadow = {"model": "admin/ab", "version": "1.2.0", "alias": "canary", "outcome": "model_error"}
    assert [s.value for s in calls.samples if s.labels == shadow] == [CALLS]


def test_a_shadow_beside_one_version(server: RunningServer) -> None:
    with server.client() as admin:
        moved = admin.set_alias("admin/ab", "solo", "1.0.0", shadow="1.2.0")
        assert (moved["alias"]["weights"], moved["alias"]["shadow"]) == ({"1.0.0": 100}, "1.2.0")
        answers = [admin.model("admin/ab/solo").call_full("x") for _ in range(5)]
    assert {(a.result, a.version) for a in answers} == {("one", "1.0.0")}
    assert _stats(server, CALLS + 5)["1.2.0"]["model_errors"] == CALLS + 5


def test_the_cli_sets_splits_and_shadows_and_refuses_bad_ones(server: RunningServer) -> None:
    def ok(*args: str) -> str:
        done = algora(*args, server=server)
        assert done.returncode == 0, done.stderr
        return done.stdout

    ok("alias", "set", "admin/ab", "staging", "1.0.0=90", "1.1.0=10", "--shadow", "1.2.0")
    [row] = [
        r for r in json.loads(ok("alias", "list", "admin/ab", "--json")) if r["alias"] == "staging"
    ]
    assert (row["weights"], row["shadow"]) == ({"1.0.0": 90, "1.1.0": 10}, "1.2.0")
    assert "1.0.0=90 1.1.0=10" in ok("alias", "list", "admin/ab")
    ok("alias", "set", "admin/ab", "staging", "1.1.0")  # one version again: no split, no shadow
    [row] = [
        r for r in json.loads(ok("alias", "list", "admin/ab", "--json")) if r["alias"] == "staging"
    ]
    assert (row["version"], row["weights"], row["shadow"]) == ("1.1.0", {"1.1.0": 100}, None)
    bad = algora("alias", "set", "admin/ab", "staging", "1.0.0=most", server=server)
    assert bad.returncode == 2 and "SPEC=WEIGHT" in bad.stderr
    refused = algora("alias", "set", "admin/ab", "staging", "1.0.0=0", "1.1.0=0", server=server)
    assert refused.returncode == 1 and "greater than or equal to 1" in refused.stderr
    with server.client() as admin:
        with pytest.raises(Conflict, match="a shadow gets a copy"):
            admin.set_alias("admin/ab", "staging", weights={"1.0.0": 1, "1.1.0": 1}, shadow="1.1")
        with pytest.raises(Conflict, match=r"two specs of the split name 1\.0\.0"):
            admin.set_alias("admin/ab", "staging", weights={"1.0.0": 1, "1.0": 1})
        with pytest.raises(InvalidInput, match="not both"):
            admin.set_alias("admin/ab", "staging", "1.0.0", weights={"1.1.0": 1})
        with pytest.raises(InvalidInput, match="name the version"):
            admin.set_alias("admin/ab", "staging")
        with pytest.raises(AliasProtected, match="protected alias"):
            admin.set_alias("admin/ab", "production", "1.0.0", shadow="1.2.0")
        assert admin.aliases("admin/ab")[-1]["alias"] == "staging"  # unchanged by refusals
        assert admin.aliases("admin/ab")[-1]["version"] == "1.1.0"
    ok("alias", "set", "admin/ab", "staging", "1.0.0=1", "1.1.0=1", "--shadow", "1.2.0")
    ok("alias", "rm", "admin/ab", "staging")  # its split and shadow go with it
    assert "staging" not in ok("alias", "list", "admin/ab")


def test_a_sticky_split_keeps_each_key_on_one_version(server: RunningServer) -> None:
    """Each key's calls all reach one version; the keys spread over both; widening the canary's
    share moves keys only towards it; a sticky alias of one version is refused."""
    with server.client() as admin:
        moved = admin.set_alias(
            "admin/ab", "sticky", weights={"1.0.0": 50, "1.1.0": 50}, sticky=True
        )
        assert moved["alias"]["sticky"] is True
        keys = [
            admin.request(
                "POST", "/api/v1/keys", json={"name": f"caller-{n}", "scopes": ["call:admin/ab"]}
            ).json()["key"]
            for n in range(12)
        ]
        with pytest.raises(InvalidInput, match="two or more versions"):
            admin.set_alias("admin/ab", "sticky", "1.0.0", sticky=True)

    def versions_of(key: str) -> set[str]:
        with httpx.Client(headers={"Authorization": f"Simple {key}"}) as http:
            return {
                http.post(f"{server.url}/v1/algo/admin/ab/sticky", json="x").headers[
                    "x-algora-version"
                ]
                for _ in range(6)
            }

    before = {key: versions_of(key) for key in keys}
    assert all(len(seen) == 1 for seen in before.values()), before
    # 12 keys each a fair coin: all on one side has a chance of 1 in 2,048
    assert {next(iter(seen)) for seen in before.values()} == {"1.0.0", "1.1.0"}
    with server.client() as admin:
        admin.set_alias("admin/ab", "sticky", weights={"1.0.0": 10, "1.1.0": 90}, sticky=True)
    after = {key: versions_of(key) for key in keys}
    assert all(after[key] == {"1.1.0"} for key in keys if before[key] == {"1.1.0"})
    done = algora("alias", "list", "admin/ab", server=server)
    assert "1.0.0=10 1.1.0=90 (sticky)" in done.stdout
