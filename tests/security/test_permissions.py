"""Nothing under a data folder is group- or world-readable (also checked as each fixture ends).

This test does what leaves files behind (publish, build, call, fail, create keys, read the
audit log) and then walks the whole data folder of both the in-process gateway and the real
server; the fixtures repeat the walk once every other test of the session is done.
"""

from __future__ import annotations

from algora.testing import RunningServer

from .conftest import World, group_or_world_readable


def test_nothing_under_the_data_folder_is_readable_by_others(
    world: World, cli_server: RunningServer
) -> None:
    world.raw(
        "POST", "/v1/algo/admin/echo", body=b'"ping"', headers={"content-type": "application/json"}
    )
    world.raw(
        "POST", "/v1/algo/admin/echo", body=b'"boom"', headers={"content-type": "application/json"}
    )
    created = world.raw(
        "POST",
        "/api/v1/keys",
        body=b'{"name": "perm"}',
        headers={"content-type": "application/json"},
    )
    assert created.status == 201
    world.secrets.append(created.json()["key"])
    assert world.http.get("/api/v1/audit/export", headers=world.auth).status_code == 200
    with cli_server.client() as client:
        client.whoami()
    for data_dir in (world.data_dir, cli_server.data_dir):
        assert (data_dir / "registry.db").exists()
        problems = group_or_world_readable(data_dir)
        assert not problems, problems[:20]
