"""Gateways started at the same moment on one new registry take turns at the start-up work:
both come up, the schema is migrated once, and there is one admin (SQLite with a shared data
folder; PostgreSQL with a data folder each, as Kubernetes replicas have)."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from algora.testing import RunningServer

from ..conftest import DATABASES, database_url


@pytest.mark.parametrize("kind", DATABASES)
def test_two_gateways_starting_at_once_on_a_new_registry(kind: str, tmp_path: Path) -> None:
    with database_url(kind) as url:
        shared = kind == "sqlite"
        url = url or f"sqlite:///{tmp_path / 'data' / 'registry.db'}"
        folders = [tmp_path / "data"] * 2 if shared else [tmp_path / "a", tmp_path / "b"]
        servers = [RunningServer(folder, env={"ALGORA_DATABASE_URL": url}) for folder in folders]
        errors: list[BaseException] = []

        def start(server: RunningServer) -> None:
            try:
                server.start()
            except BaseException as error:  # reported below, with the server's log
                errors.append(error)

        threads = [threading.Thread(target=start, args=(s,)) for s in servers]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert not errors, "\n".join(f"{e}" for e in errors)
            keys = [f.read_text().strip() for f in {*(s.data_dir / "admin.key" for s in servers)}
                    if f.exists()]  # fmt: skip
            assert len(keys) == 1  # one admin, created once
            for server in servers:
                admins = httpx.get(
                    f"{server.url}/api/v1/principals",
                    headers={"Authorization": f"Simple {keys[0]}"},
                ).json()
                assert [p["name"] for p in admins if p["is_admin"]] == ["admin"]
        finally:
            for server in servers:
                server.stop()
