"""Two gateways on one registry write one audit chain: calls through both at once leave one row
each, with gapless ids, and the chain verifies (SQLite's write lock, PostgreSQL's advisory
lock)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from algora.testing import write_model

from ..conftest import DATABASES, database_url, in_process

HELLO = 'def apply(input: str) -> str:\n    return "Hello " + input\n'


@pytest.mark.parametrize("kind", DATABASES)
def test_calls_through_two_gateways_form_one_verifiable_chain(kind: str, tmp_path: Path) -> None:
    with database_url(kind) as url:
        url = url or f"sqlite:///{tmp_path / 'shared.db'}"
        # One data folder, as docs/operations.md lays out several gateways on the local store.
        with (
            in_process(tmp_path / "data", database_url=url) as a,
            in_process(tmp_path / "data", database_url=url) as b,
        ):
            a.client.publish(write_model(tmp_path / "hello", "hello", HELLO))
            auth = {"Authorization": f"Simple {a.key}", "Content-Type": "text/plain"}

            def call(n: int) -> str:
                gateway = (a, b)[n % 2]
                request_id = f"two-gateways-{n}"
                answer = gateway.http.post(
                    "/v1/algo/admin/hello",
                    content=str(n),
                    headers={**auth, "X-Request-Id": request_id},
                )
                assert answer.status_code == 200, answer.text
                return request_id

            with ThreadPoolExecutor(8) as pool:
                sent = set(pool.map(call, range(60)))
            for gateway in (a, b):
                report = gateway.http.get("/api/v1/audit/verify", headers=auth)
                assert report.status_code == 200, report.text
                assert report.json()["ok"] is True, report.json()
            rows = a.http.get(
                "/api/v1/audit", params={"model": "admin/hello", "limit": 1000}, headers=auth
            ).json()
            calls = [r for r in rows if r["action"] == "model.call"]
            assert sorted(r["request_id"] for r in calls) == sorted(sent)  # once each
            ids = sorted(r["id"] for r in rows)
            assert ids == list(range(ids[0], ids[0] + len(ids)))  # gapless
