"""Rate limits: bucket math, eviction, and 429 + Retry-After through the gateway."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, select
from typer.testing import CliRunner

from algora.auth import principals
from algora.auth.ratelimit import KeyLimits, Limit, ModelLimit, RateLimiter
from algora.cli import catalog
from algora.cli.main import app as cli
from algora.db.engine import create_registry_engine
from algora.db.migrate import upgrade
from algora.db.tables import ApiKey
from algora.errors import Overloaded, RateLimited, error_from_body, retry_after
from algora.testing import write_model

from ..conftest import DATABASES, HELLO_MODEL, InProcess, gateway_on


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limited(rate: float, burst: int, *models: tuple[str, float, int]) -> KeyLimits:
    return KeyLimits(
        key=Limit(rate, burst), models=tuple(ModelLimit(p, Limit(r, b)) for p, r, b in models)
    )


# --------------------------------------------------------------------------- the buckets


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    limits = limited(2.0, 3)
    for _ in range(3):
        limiter.check("k", "a/m", limits)
    with pytest.raises(RateLimited) as refused:
        limiter.check("k", "a/m", limits)
    assert refused.value.details["retry_after"] == pytest.approx(0.5)
    assert refused.value.details["scope"] == "key"
    clock.now += 0.25  # half a token: still refused, and the wait has halved
    with pytest.raises(RateLimited) as again:
        limiter.check("k", "a/m", limits)
    assert again.value.details["retry_after"] == pytest.approx(0.25)
    clock.now += 0.25
    limiter.check("k", "a/m", limits)
    clock.now += 100  # a long quiet spell refills to the burst, never past it
    for _ in range(3):
        limiter.check("k", "a/m", limits)
    with pytest.raises(RateLimited):
        limiter.check("k", "a/m", limits)


def test_keys_have_their_own_buckets_and_unlimited_keys_pass() -> None:
    limiter = RateLimiter(clock=Clock())
    limiter.check("a", "x/m", limited(1.0, 1))
    with pytest.raises(RateLimited):
        limiter.check("a", "x/m", limited(1.0, 1))
    limiter.check("b", "x/m", limited(1.0, 1))
    for _ in range(1000):
        limiter.check("c", "x/m", KeyLimits())
    assert len(limiter) == 2  # no bucket for an unlimited key


def test_the_server_default_applies_to_keys_without_a_limit() -> None:
    limiter = RateLimiter(Limit(1.0, 2), clock=Clock())
    limiter.check("k", None, KeyLimits())
    limiter.check("k", None, KeyLimits())
    with pytest.raises(RateLimited):
        limiter.check("k", None, KeyLimits())
    for _ in range(5):  # the key's own limit wins over the default
        limiter.check("own", None, limited(1.0, 5))


def test_a_model_limit_applies_to_its_models_only_and_refusals_take_no_token() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    limits = limited(10.0, 4, ("a/iris", 1.0, 1), ("b/*", 1.0, 2))
    limiter.check("k", "a/iris", limits)
    with pytest.raises(RateLimited) as refused:
        limiter.check("k", "a/iris", limits)
    assert refused.value.details["scope"] == "a/iris"
    assert "for 'a/iris'" in refused.value.message
    # The refusal took no token from the key's bucket: three are left for other models.
    for _ in range(3):
        limiter.check("k", "a/other", limits)
    with pytest.raises(RateLimited) as key_refused:
        limiter.check("k", "a/other", limits)
    assert key_refused.value.details["scope"] == "key"
    clock.now += 10
    limiter.check("k", "b/one", limits)  # owner/* covers all of b's models with one bucket
    limiter.check("k", "b/two", limits)
    with pytest.raises(RateLimited):
        limiter.check("k", "b/three", limits)


def test_exact_model_limits_beat_wildcards() -> None:
    limits = KeyLimits(
        models=(ModelLimit("a/*", Limit(1.0, 1)), ModelLimit("a/iris", Limit(5.0, 5)))
    )
    exact = limits.for_model("a/iris")
    assert exact is not None and exact.pattern == "a/iris"
    wildcard = limits.for_model("a/other")
    assert wildcard is not None and wildcard.pattern == "a/*"
    assert limits.for_model("b/iris") is None


def test_a_changed_limit_applies_to_the_existing_bucket() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    for _ in range(10):
        limiter.check("k", None, limited(1.0, 10))
    with pytest.raises(RateLimited):
        limiter.check("k", None, limited(1.0, 10))
    clock.now += 0.1
    limiter.check("k", None, limited(10.0, 10))  # 10/s refilled one token in 0.1 s


def test_idle_buckets_are_evicted_and_memory_is_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock, max_buckets=50)
    for n in range(20):
        limiter.check(f"k{n}", None, limited(1.0, 1))
    assert len(limiter) == 20
    clock.now += 2  # all refilled: idle buckets carry nothing and go, a few per check
    for _ in range(15):
        limiter.check("busy", None, limited(1000.0, 1000))
    assert len(limiter) <= 1 + 20 - 2 * 15 + 10  # at most 2 swept per check
    assert len(limiter) < 5
    for n in range(500):  # never more than the bound, even when none is idle
        limiter.check(f"burst{n}", None, limited(0.001, 1))
    assert len(limiter) <= 50


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError):
        Limit(0.0, 1)
    with pytest.raises(ValueError):
        Limit(math.inf, 1)
    with pytest.raises(ValueError):
        Limit(1.0, 0)
    assert Limit.of(None, 5) is None
    assert Limit.of(2.5, None) == Limit(2.5, 3)


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    assert retry_after(RateLimited("x", details={"retry_after": 0.01})) == 1
    assert retry_after(RateLimited("x", details={"retry_after": 2.2})) == 3
    assert retry_after(Overloaded("busy")) == 1
    assert retry_after(error_from_body(404, {"error": {"code": "not_found"}})) is None
    assert isinstance(error_from_body(429, {"error": {"code": "rate_limited"}}), RateLimited)


# --------------------------------------------------------------------------- the gateway


@pytest.fixture(scope="module", params=DATABASES)
def limits_gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcess]:
    with gateway_on(request, tmp_path_factory, "algora-limits", default_call_timeout=20) as gateway:
        http = gateway.http
        root = tmp_path_factory.mktemp("limits-models")
        for name in ("hello", "other"):
            gateway.client.publish(write_model(root / name, name, HELLO_MODEL))
            public = http.patch(
                f"/api/v1/models/admin/{name}",
                json={"visibility": "public"},
                headers=gateway.auth,
            )
            assert public.status_code == 200, public.text
        yield gateway


def new_key(gw: InProcess, user: str | None = None) -> tuple[str, str]:
    """(key id, secret): a new key of the admin, or the first key of a new user."""
    if user is None:
        response = gw.http.post("/api/v1/keys", json={"name": "t"}, headers=gw.auth)
    else:
        response = gw.http.post("/api/v1/principals", json={"name": user}, headers=gw.auth)
    assert response.status_code == 201, response.text
    return response.json()["key_id"], response.json()["key"]


def call(gw: InProcess, secret: str, model: str = "admin/hello", request_id: str | None = None):
    headers = {"Authorization": f"Simple {secret}", "Content-Type": "text/plain"}
    if request_id:
        headers["X-Request-Id"] = request_id
    return gw.http.post(f"/v1/algo/{model}", content=b"x", headers=headers)


def limit_key(gw: InProcess, key_id: str, auth: dict[str, str] | None = None, **body: object):
    return gw.http.patch(f"/api/v1/keys/{key_id}", json=body, headers=auth or gw.auth)


def test_a_limited_key_gets_429_after_its_burst_and_others_do_not(
    limits_gateway: InProcess,
) -> None:
    gw = limits_gateway
    noisy_id, noisy = new_key(gw)
    _quiet_id, quiet = new_key(gw)
    # 0.5/s: a loaded machine may take a while over the six calls; no token comes back in 2 s.
    changed = limit_key(gw, noisy_id, rate_per_second=0.5, burst=5)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["rate_per_second"], changed.json()["burst"]) == (0.5, 5)
    statuses = [call(gw, noisy).status_code for _ in range(5)]
    assert statuses == [200] * 5
    refused = call(gw, noisy)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    for _ in range(10):
        assert call(gw, quiet).status_code == 200
    time.sleep(2.1)  # a token is back after 2 s
    assert call(gw, noisy).status_code == 200


def test_a_rate_limited_call_is_audited_as_a_denial(limits_gateway: InProcess) -> None:
    gw = limits_gateway
    key_id, secret = new_key(gw)
    assert limit_key(gw, key_id, rate_per_second=0.01, burst=1).status_code == 200
    assert call(gw, secret).status_code == 200
    request_id = "req-test-" + uuid.uuid4().hex
    assert call(gw, secret, request_id=request_id).status_code == 429
    rows = gw.http.get("/api/v1/audit", params={"request_id": request_id}, headers=gw.auth)
    assert rows.status_code == 200, rows.text
    [row] = rows.json()
    assert (row["action"], row["resource"], row["key_id"]) == ("model.call", "admin/hello", key_id)
    assert (row["decision"], row["status"], row["error_code"]) == ("deny", 429, "rate_limited")
    changes = gw.http.get(
        "/api/v1/audit", params={"action": "key.limit", "limit": 1000}, headers=gw.auth
    )
    assert changes.status_code == 200, changes.text
    assert any(r["resource"] == f"key/{key_id}" for r in changes.json())


def test_a_model_limit_applies_to_that_model_only(limits_gateway: InProcess) -> None:
    gw = limits_gateway
    key_id, secret = new_key(gw)
    path = f"/api/v1/keys/{key_id}/model-limits"
    body = [{"model": "admin/hello", "rate_per_second": 0.01, "burst": 2}]
    put = gw.http.put(path, json=body, headers=gw.auth)
    assert put.status_code == 200, put.text
    assert put.json() == body
    assert gw.http.get(path, headers=gw.auth).json() == body
    assert [call(gw, secret).status_code for _ in range(3)] == [200, 200, 429]
    assert all(call(gw, secret, "admin/other").status_code == 200 for _ in range(5))
    bad = gw.http.put(path, json=[{"model": "Admin", "rate_per_second": 1}], headers=gw.auth)
    assert bad.status_code == 400
    assert gw.http.put(path, json=[], headers=gw.auth).json() == []
    assert call(gw, secret).status_code == 200  # removed: the model is unlimited again


def test_a_principal_default_applies_to_keys_without_their_own(
    limits_gateway: InProcess,
) -> None:
    gw = limits_gateway
    first_id, first = new_key(gw, "carol")
    carol = {"Authorization": f"Simple {first}"}
    second = gw.http.post("/api/v1/keys", json={"name": "own"}, headers=carol).json()
    assert limit_key(gw, second["key_id"], rate_per_second=100, burst=100).status_code == 200
    denied = gw.http.patch("/api/v1/principals/carol", json={"rate_per_second": 1}, headers=carol)
    assert denied.status_code == 403
    patched = gw.http.patch(
        "/api/v1/principals/carol", json={"rate_per_second": 0.01, "burst": 1}, headers=gw.auth
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["rate_per_second"] == 0.01
    assert [call(gw, first).status_code for _ in range(2)] == [200, 429]
    assert call(gw, second["key"]).status_code != 429  # its own limit wins
    # The owner may tighten a key, never loosen it past what it inherits (its first key is
    # out of tokens for writes too, so she uses the second).
    by_second = {"Authorization": f"Simple {second['key']}"}
    looser = limit_key(gw, first_id, by_second, rate_per_second=50)
    assert looser.status_code == 403, looser.text
    assert limit_key(gw, first_id, by_second, rate_per_second=0.005, burst=1).status_code == 200
    assert limit_key(gw, first_id, by_second, rate_per_second=None).status_code == 403
    assert gw.http.patch("/api/v1/principals/nobody", json={}, headers=gw.auth).status_code == 404


def test_others_cannot_see_or_limit_a_key(limits_gateway: InProcess) -> None:
    gw = limits_gateway
    admin_key_id, _ = new_key(gw)
    _, dave = new_key(gw, "dave")
    response = limit_key(gw, admin_key_id, {"Authorization": f"Simple {dave}"}, burst=1)
    assert response.status_code == 404


def test_a_change_elsewhere_is_picked_up_within_the_cache_ttl(
    limits_gateway: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another gateway's change reaches this one when the cached caller expires."""
    gw = limits_gateway
    monkeypatch.setattr(principals, "_CACHE_SECONDS", 0.5)
    key_id, secret = new_key(gw)
    assert call(gw, secret).status_code == 200  # cached: unlimited
    platform = gw.http.app.state.platform  # type: ignore[attr-defined]
    with platform.sessions() as session:
        key = session.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).one()
        key.rate_per_second, key.burst = 0.01, 1
        session.commit()
    deadline = time.monotonic() + 3
    statuses = []
    while time.monotonic() < deadline and 429 not in statuses:
        statuses.append(call(gw, secret).status_code)
        time.sleep(0.05)
    assert 429 in statuses


def test_management_writes_share_the_key_bucket(limits_gateway: InProcess) -> None:
    gw = limits_gateway
    key_id, secret = new_key(gw)
    auth = {"Authorization": f"Simple {secret}"}
    assert limit_key(gw, key_id, rate_per_second=0.01, burst=2).status_code == 200
    assert gw.http.post("/api/v1/keys", json={}, headers=auth).status_code == 201
    assert gw.http.post("/api/v1/keys", json={}, headers=auth).status_code == 201
    refused = gw.http.post("/api/v1/keys", json={}, headers=auth)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    assert gw.http.get("/api/v1/keys", headers=auth).status_code == 200  # reads are free


def test_the_cli_sets_key_and_model_limits(
    limits_gateway: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI command, in-process: its SDK client is the gateway's in-process one."""
    gw = limits_gateway
    key_id, secret = new_key(gw)
    monkeypatch.setattr(catalog, "client_for", lambda *_args: gw.client)
    runner = CliRunner()
    done = runner.invoke(cli, ["keys", "limit", key_id, "--rate", "0.01", "--burst", "1"])
    assert done.exit_code == 0, done.output
    done = runner.invoke(cli, ["keys", "limit", key_id, "--rate", "0.01", "--model", "admin/other"])
    assert done.exit_code == 0, done.output
    assert runner.invoke(cli, ["keys", "limit", key_id]).exit_code == 2
    path = f"/api/v1/keys/{key_id}/model-limits"
    assert gw.http.get(path, headers=gw.auth).json() == [
        {"model": "admin/other", "rate_per_second": 0.01, "burst": None}
    ]
    assert [call(gw, secret).status_code for _ in range(2)] == [200, 429]
    done = runner.invoke(cli, ["keys", "limit", key_id, "--clear", "--model", "admin/other"])
    assert done.exit_code == 0, done.output
    assert gw.http.get(path, headers=gw.auth).json() == []


def test_the_migration_runs_down_and_up(tmp_path: Path) -> None:
    engine = create_registry_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    upgrade(engine, "0002")
    upgrade(engine)
    with engine.connect() as connection:
        for table in ("api_keys", "principals"):
            names = {c["name"] for c in inspect(connection).get_columns(table)}
            assert {"rate_per_second", "burst"} <= names
        assert "key_model_limits" in inspect(connection).get_table_names()
    engine.dispose()
