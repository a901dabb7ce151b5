"""Deciding on promotions from a model's page: an approver approves (the alias moves, and the
audit log has the approval and the move) or rejects; a requester cannot decide on their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from algora.testing import write_model

from ..conftest import InProcess, in_process
from ..helpers import new_users
from .conftest import HELLO, csrf_in, sign_in


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    root = tmp_path_factory.mktemp("promotions-ui")
    with in_process(root / "data", protected_aliases=["production"]) as gateway:
        yield gateway


def _browser(gateway: InProcess, key: str) -> TestClient:
    http = TestClient(gateway.http.app, raise_server_exceptions=False)
    http.portal = gateway.http.portal
    sign_in(http, key)
    return http


def _ask(gateway: InProcess, key: str, version: str) -> int:
    asked = gateway.http.put(
        "/api/v1/models/ann/ranker/aliases/production",
        json={"version": version},
        headers={"Authorization": f"Simple {key}"},
    )
    assert asked.status_code == 202, asked.text
    return int(asked.json()["promotion"]["id"])


def test_an_approver_approves_and_rejects_from_the_models_page(
    gateway: InProcess, tmp_path: Path
) -> None:
    keys = new_users(gateway.client, "ann")
    ann = gateway.client.__class__("http://testserver", keys["ann"], http=gateway.http)
    folder = write_model(tmp_path / "ranker", "ranker", HELLO)
    for version in ("1.0.0", "1.1.0"):
        ann.publish(folder, owner="ann", version=version)
    asked = _ask(gateway, keys["ann"], "1.1.0")

    mine = _browser(gateway, keys["ann"])  # the requester may not decide on her own request
    page = mine.get("/ui/models/ann/ranker")
    own = mine.post(
        f"/ui/models/ann/ranker/promotions/{asked}/approve", data={"csrf": csrf_in(page.text)}
    )
    assert own.status_code == 403
    assert 'id="promotion-error"' in own.text and "another principal" in own.text

    admin = _browser(gateway, gateway.key)
    page = admin.get("/ui/models/ann/ranker")
    assert f"/promotions/{asked}/approve" in page.text and "Approve: move production" in page.text
    no_token = admin.post(f"/ui/models/ann/ranker/promotions/{asked}/approve", data={})
    assert no_token.status_code == 403
    approved = admin.post(
        f"/ui/models/ann/ranker/promotions/{asked}/approve",
        data={"csrf": csrf_in(page.text), "note": "looks good"},
        follow_redirects=False,
    )
    assert approved.status_code == 303, approved.text
    aliases = gateway.client.request("GET", "/api/v1/models/ann/ranker/aliases").json()
    assert {a["alias"]: a["version"] for a in aliases}["production"] == "1.1.0"
    events = gateway.client.request(
        "GET", "/api/v1/audit", params={"model": "ann/ranker", "principal": "admin"}
    ).json()
    actions = [e["action"] for e in events]
    assert "promotion.approve" in actions and "alias.move" in actions
    approval = next(e for e in events if e["action"] == "promotion.approve")
    move = next(e for e in events if e["action"] == "alias.move")
    assert move["request_id"] == approval["request_id"]  # the move under its approval

    again = _ask(gateway, keys["ann"], "1.0.0")
    page = admin.get("/ui/models/ann/ranker")
    rejected = admin.post(
        f"/ui/models/ann/ranker/promotions/{again}/reject",
        data={"csrf": csrf_in(page.text), "note": "not now"},
        follow_redirects=False,
    )
    assert rejected.status_code == 303, rejected.text
    aliases = gateway.client.request("GET", "/api/v1/models/ann/ranker/aliases").json()
    assert {a["alias"]: a["version"] for a in aliases}["production"] == "1.1.0"  # nothing moved
    assert f"/promotions/{again}/approve" not in admin.get("/ui/models/ann/ranker").text
