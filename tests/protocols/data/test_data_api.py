"""Hosted data (``/v1/data``): in-process through the gateway, and with Algorithmia's own client
(PyPI ``algorithmia==2.0.5``, unchanged) against a real server."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import Algorithmia
import httpx
import pytest
from Algorithmia.acl import ReadAcl
from sqlalchemy import select
from starlette.testclient import TestClient

from algora.db.tables import AuditEventRow
from algora.testing import RunningServer

from ...conftest import DATABASES, gateway_on
from ...helpers import new_users

CAP = 256 * 1024


class Data:
    """The gateway in-process with users dora and otto beside the admin."""

    def __init__(self, http: TestClient, data_dir: Path) -> None:
        self.http = http
        self.data_dir = data_dir
        self.keys = {"admin": (data_dir / "admin.key").read_text().strip()}

    def req(self, who: str, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Simple {self.keys[who]}", **kwargs.pop("headers", {})}
        return self.http.request(method, "/v1/data/" + path, headers=headers, **kwargs)

    @property
    def collections(self) -> Path:
        return self.data_dir / "collections"


@pytest.fixture(scope="module", params=DATABASES)
def data(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Data]:
    with gateway_on(
        request, tmp_path_factory, "algora-data-api", max_data_file_bytes=CAP
    ) as gateway:
        d = Data(gateway.http, gateway.data_dir)
        d.keys.update(new_users(gateway.client, "dora", "otto"))
        yield d


def test_root_lists_the_caller_first_and_my_names_the_caller(data: Data) -> None:
    assert data.req("dora", "GET", "").json()["folders"][0] == {"name": "dora"}
    made = data.req("dora", "POST", ".my", json={"name": "first"})
    assert made.status_code == 200, made.text
    assert made.json() == {"result": "data://dora/first"}
    listed = data.req("dora", "GET", ".my").json()
    assert [f["name"] for f in listed["folders"]] == ["first"]
    assert data.req("dora", "GET", "dora/").json() == listed
    again = data.req("dora", "POST", ".my", json={"name": "first"})
    assert again.status_code == 409
    assert "message" in again.json()["error"]


def test_files_folders_listing_paging_and_deletes(data: Data) -> None:
    assert data.req("dora", "POST", "dora", json={"name": "work"}).status_code == 200
    put = data.req("dora", "PUT", ".my/work/a.txt", content=b"hello")
    assert put.status_code == 200, put.text
    assert put.json() == {"result": "data://dora/work/a.txt"}
    head = data.req("dora", "HEAD", ".my/work/a.txt")
    assert head.status_code == 200
    assert head.headers["X-Data-Type"] == "file"
    missing = data.req("dora", "HEAD", ".my/work/nothing.txt")
    assert missing.status_code == 404
    assert "nothing.txt" in missing.headers["X-Error-Message"]
    got = data.req("dora", "GET", ".my/work/a.txt")
    assert got.content == b"hello"
    assert got.headers["content-type"] == "application/octet-stream"
    assert data.req("dora", "PUT", ".my/work/a.txt", content=b"again").status_code == 200
    assert data.req("dora", "GET", "dora/work/a.txt").content == b"again"
    assert data.req("dora", "POST", ".my/work", json={"name": "sub"}).status_code == 200
    assert data.req("dora", "HEAD", ".my/work/sub").headers["X-Data-Type"] == "directory"
    for i in range(5):
        assert data.req("dora", "PUT", f".my/work/sub/f{i}", content=b"x" * i).status_code == 200
    names: list[str] = []
    marker = None
    pages = 0
    while True:
        params = {"limit": "2", **({"marker": marker} if marker else {})}
        page = data.req("dora", "GET", ".my/work/sub", params=params).json()
        pages += 1
        names += [f["filename"] for f in page["files"]]
        for f in page["files"]:
            assert f["size"] == int(f["filename"][1:])
            assert f["last_modified"].endswith("Z") and len(f["last_modified"]) == 24
        marker = page.get("marker")
        if not marker:
            break
    assert names == [f"f{i}" for i in range(5)]
    assert pages == 3
    top = data.req("dora", "GET", ".my/work").json()
    assert top["folders"] == [{"name": "sub"}]
    assert [f["filename"] for f in top["files"]] == ["a.txt"]
    refused = data.req("dora", "DELETE", ".my/work/sub")
    assert refused.status_code == 400
    assert "force" in refused.json()["error"]["message"]
    gone = data.req("dora", "DELETE", ".my/work/sub", params={"force": "true"})
    assert gone.json() == {"result": {"deleted": 5}}
    assert data.req("dora", "DELETE", ".my/work/a.txt").json() == {"result": {"deleted": 1}}
    assert data.req("dora", "GET", ".my/work/a.txt").status_code == 404
    assert data.req("dora", "DELETE", ".my/work").json() == {"result": {"deleted": 0}}
    assert data.req("dora", "HEAD", ".my/work").status_code == 404
    assert data.req("dora", "GET", ".my/work").status_code == 404
    assert not (data.collections / "dora" / "work").exists()


def test_writes_are_audited_with_data_actions(data: Data) -> None:
    assert data.req("dora", "POST", ".my", json={"name": "audited"}).status_code == 200
    assert data.req("dora", "PUT", ".my/audited/x", content=b"1").status_code == 200
    acl = {"acl": {"read": ["user://*"]}}
    assert data.req("dora", "PATCH", ".my/audited", json=acl).status_code == 200
    assert data.req("dora", "DELETE", ".my/audited/x").status_code == 200
    platform = data.http.app.state.platform  # type: ignore[attr-defined]
    assert data.http.portal is not None  # inside the client's `with`
    data.http.portal.call(platform.audit.sync)  # the rows journaled so far, into the database
    with platform.sessions() as session:
        rows = session.scalars(
            select(AuditEventRow).where(AuditEventRow.resource.like("data://dora/audited%"))
        ).all()
        seen = {(r.action, r.resource, r.principal) for r in rows}
    assert seen >= {
        ("data.create", "data://dora/audited", "dora"),
        ("data.put", "data://dora/audited/x", "dora"),
        ("data.acl", "data://dora/audited", "dora"),
        ("data.delete", "data://dora/audited/x", "dora"),
    }


def test_acls_decide_who_else_reads(data: Data) -> None:
    body = {"name": "shared", "acl": {"read": []}}
    assert data.req("dora", "POST", ".my", json=body).status_code == 200
    assert data.req("dora", "PUT", ".my/shared/f", content=b"secret").status_code == 200
    assert data.req("dora", "GET", ".my/shared", params={"acl": "true"}).json() == {
        "acl": {"read": []}
    }
    assert data.req("otto", "GET", "dora/shared/f").status_code == 404
    assert data.req("otto", "HEAD", "dora/shared/f").status_code == 404
    assert data.req("otto", "GET", "dora").json()["folders"] == [
        f for f in data.req("otto", "GET", "dora").json()["folders"] if f["name"] != "shared"
    ]
    for acl, otto_reads in ((["user://*"], True), (["algo://.my/*"], False), ([], False)):
        patched = data.req("dora", "PATCH", ".my/shared", json={"acl": {"read": acl}})
        assert patched.status_code == 200, patched.text
        got = data.req("dora", "GET", ".my/shared", params={"acl": "true"}).json()
        assert got == {"acl": {"read": acl}}
        reading = data.req("otto", "GET", "dora/shared/f")
        assert (reading.status_code == 200) is otto_reads, reading.text
        if otto_reads:
            assert reading.content == b"secret"
            names = [f["name"] for f in data.req("otto", "GET", "dora").json()["folders"]]
            assert "shared" in names
            # Reading is not writing, nor changing the ACL.
            assert data.req("otto", "PUT", "dora/shared/f", content=b"x").status_code == 403
            denied = data.req("otto", "PATCH", "dora/shared", json={"acl": {"read": []}})
            assert denied.status_code == 403
    assert data.req("otto", "POST", "dora", json={"name": "intrude"}).status_code == 403
    bad = data.req("dora", "PATCH", ".my/shared", json={"acl": {"read": ["anyone"]}})
    assert bad.status_code == 400
    assert data.req("dora", "GET", ".my/shared/f").content == b"secret"


def test_uploads_over_the_cap_are_refused_and_leave_nothing(data: Data) -> None:
    assert data.req("dora", "POST", ".my", json={"name": "big"}).status_code == 200
    folder = data.collections / "dora" / "big"
    fits = os.urandom(CAP)
    assert data.req("dora", "PUT", ".my/big/fits", content=fits).status_code == 200
    assert data.req("dora", "GET", ".my/big/fits").content == fits
    declared = data.req("dora", "PUT", ".my/big/over", content=b"x" * (CAP + 1))
    assert declared.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused while streaming
        for _ in range(CAP // 1024 + 8):
            yield b"y" * 1024

    streamed = data.req("dora", "PUT", ".my/big/over", content=chunks())
    assert streamed.status_code == 413, streamed.text
    assert sorted(p.name for p in folder.iterdir()) == ["fits"]
    replaced = data.req("dora", "PUT", ".my/big/fits", content=chunks())
    assert replaced.status_code == 413
    assert data.req("dora", "GET", ".my/big/fits").content == fits  # the old file, whole


def test_paths_are_checked_and_nothing_is_world_readable(data: Data) -> None:
    assert data.req("dora", "POST", ".my", json={"name": "safe"}).status_code == 200
    for bad in (
        ".my/safe/%2e%2e/%2e%2e/otto",
        ".my/safe/..%2f..%2fotto",
        ".my/safe/%2e%2e/x",
        ".my/safe/a%00b",
        ".my/safe/a%5cb",
        ".my/safe//x",
        ".my/%2e/safe/x",
        ".my/safe/.algora-upload-x",
    ):
        response = data.req("dora", "PUT", bad, content=b"x")
        assert response.status_code in (400, 404), (bad, response.status_code)
    assert data.req("dora", "POST", ".my", json={"name": ".."}).status_code == 400
    assert data.req("dora", "POST", ".my", json={"name": "a/b"}).status_code == 400
    assert data.req("dora", "POST", ".my/safe", json={"name": ".."}).status_code == 400
    assert data.req("dora", "GET", "nobody/x").status_code == 404
    assert data.req("dora", "PUT", ".my/safe/deep/x", content=b"x").status_code == 404
    assert data.req("dora", "PUT", ".my/safe/ok", content=b"x").status_code == 200
    for folder, dirnames, filenames in os.walk(data.collections):
        for name in [".", *dirnames, *filenames]:
            mode = stat.S_IMODE((Path(folder) / name).lstat().st_mode)
            assert mode & 0o077 == 0, (folder, name, oct(mode))


def test_scopes_narrow_data_access(data: Data) -> None:
    assert data.req("dora", "POST", ".my", json={"name": "scoped"}).status_code == 200
    assert data.req("dora", "PUT", ".my/scoped/f", content=b"1").status_code == 200
    headers = {"Authorization": f"Simple {data.keys['dora']}"}
    made = data.http.post(
        "/api/v1/keys", json={"name": "ro", "scopes": ["data:read:dora/scoped"]}, headers=headers
    )
    assert made.status_code == 201, made.text
    data.keys["dora-ro"] = made.json()["key"]
    assert data.req("dora-ro", "GET", "dora/scoped/f").content == b"1"
    assert data.req("dora-ro", "PUT", "dora/scoped/f", content=b"2").status_code == 403
    assert data.req("dora-ro", "GET", "dora/shared/f").status_code == 403
    names = [f["name"] for f in data.req("dora-ro", "GET", ".my").json()["folders"]]
    assert names == ["scoped"]


# -- Algorithmia's own client against a real server -------------------------------------------
REAL_CAP = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("data-client")
    env = {"ALGORA_MAX_DATA_FILE_BYTES": str(REAL_CAP)}
    with RunningServer(root / "data", env=env) as running:
        yield running


def test_the_algorithmia_client_end_to_end(server: RunningServer, tmp_path: Path) -> None:
    client = Algorithmia.client(server.key, server.url)
    assert client.username() == "admin"
    folder = client.dir("data://.my/things")
    assert not folder.exists()
    folder.create()
    assert folder.exists()
    text = folder.file("a.txt")
    assert not text.exists()
    text.put("hello data")
    assert text.exists()
    assert text.getString() == "hello data"
    assert text.getBytes() == b"hello data"
    doc = client.file("data://.my/things/doc.json").putJson({"a": [1, 2]})
    assert doc.getJson() == {"a": [1, 2]}
    raw = client.file("data://admin/things/raw.bin").put(b"\x00\x01\xff")
    assert raw.getBytes() == b"\x00\x01\xff"
    files = {f.getName(): f for f in folder.files()}
    assert set(files) == {"a.txt", "doc.json", "raw.bin"}
    assert files["raw.bin"].size == 3 and files["raw.bin"].last_modified is not None
    assert folder.get_permissions().read_acl.pseudonym == "my_algos"
    folder.update_permissions(ReadAcl.public)
    assert folder.get_permissions().read_acl.pseudonym == "public"
    folder.update_permissions(ReadAcl.private)
    assert folder.get_permissions().read_acl.pseudonym == "private"
    assert text.delete() is True
    assert not text.exists()
    assert folder.delete(force=True) is True
    assert not folder.exists()


def test_the_algorithmia_client_pages_through_many_files(server: RunningServer) -> None:
    client = Algorithmia.client(server.key, server.url)
    folder = client.dir("data://.my/many")
    folder.create()
    disk = server.data_dir / "collections" / "admin" / "many"
    count = 1234  # more than one page (1000)
    for i in range(count):
        path = disk / f"f{i:05d}"
        path.write_bytes(b"x")
        path.chmod(0o600)
    first = httpx.get(server.url + "/v1/data/admin/many", headers={"Authorization": server.key})
    assert len(first.json()["files"]) == 1000 and first.json()["marker"]
    names = [f.getName() for f in folder.files()]
    assert names == [f"f{i:05d}" for i in range(count)]
    assert folder.delete(force=True)


def test_the_algorithmia_client_streams_big_files_under_the_cap(
    server: RunningServer, tmp_path: Path
) -> None:
    client = Algorithmia.client(server.key, server.url)
    client.dir("data://.my/big").create()
    local = tmp_path / "big.bin"
    with local.open("wb") as out:
        for _ in range(6):
            out.write(os.urandom(1024 * 1024))
    remote = client.file("data://.my/big/big.bin").putFile(str(local))
    digest = hashlib.sha256(remote.getBytes()).hexdigest()
    assert digest == hashlib.sha256(local.read_bytes()).hexdigest()
    too_big = client.file("data://.my/big/too-big.bin")
    with pytest.raises(Exception, match="413"):  # the client raises a bare Exception
        too_big.put(b"z" * (REAL_CAP + 1))
    assert not too_big.exists()
    folder = server.data_dir / "collections" / "admin" / "big"
    assert sorted(p.name for p in folder.iterdir()) == ["big.bin"]


def test_readers_see_the_old_file_or_the_new_one_never_half(server: RunningServer) -> None:
    client = Algorithmia.client(server.key, server.url)
    client.dir("data://.my/atomic").create()
    size = 512 * 1024
    versions = [bytes([65 + i]) * size for i in range(3)]
    url = server.url + "/v1/data/admin/atomic/f"
    headers = {"Authorization": server.key}
    assert httpx.put(url, content=versions[0], headers=headers).status_code == 200
    seen: set[bytes] = set()
    stop = threading.Event()

    def read() -> None:
        with httpx.Client(headers=headers, timeout=30) as http:
            while not stop.is_set():
                body = http.get(url).content
                assert body in versions, (len(body), body[:1], body[-1:])
                seen.add(body[:1])

    reader = concurrent.futures.ThreadPoolExecutor(max_workers=1).submit(read)
    with httpx.Client(headers=headers, timeout=30) as http:
        for i in range(30):
            assert http.put(url, content=versions[i % 3]).status_code == 200
    stop.set()
    reader.result(timeout=60)
    assert len(seen) >= 1
    leftovers = [p.name for p in (server.data_dir / "collections/admin/atomic").iterdir()]
    assert leftovers == ["f"]


def test_another_user_reads_only_public_collections(server: RunningServer) -> None:
    admin = Algorithmia.client(server.key, server.url)
    made = httpx.post(
        server.url + "/api/v1/principals",
        json={"name": "reader"},
        headers={"Authorization": server.key},
    )
    assert made.status_code == 201, made.text
    reader = Algorithmia.client(made.json()["key"], server.url)
    assert reader.username() == "reader"
    admin.dir("data://.my/private").create(ReadAcl.private)
    admin.file("data://.my/private/f").put("p")
    admin.dir("data://.my/open").create(ReadAcl.public)
    admin.file("data://.my/open/f").put("o")
    assert not reader.file("data://admin/private/f").exists()
    assert not reader.dir("data://admin/private").exists()
    assert reader.file("data://admin/open/f").getString() == "o"
    with pytest.raises(Exception, match="403"):
        reader.file("data://admin/open/f").put("overwrite")
    assert admin.file("data://.my/open/f").getString() == "o"
    for bad in ("data://.my/open/../private/f", "data://.my/open/..%2fprivate%2ff"):
        assert not reader.file(bad).exists()
    answer = httpx.get(
        server.url + "/v1/data/admin/private/f", headers={"Authorization": made.json()["key"]}
    )
    assert answer.status_code == 404
    assert json.loads(answer.text)["error"]["message"]
