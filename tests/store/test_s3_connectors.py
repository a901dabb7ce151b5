"""S3 data connectors: ``s3://bucket/key`` through ``/v1/data`` and ``/v1/connector``, against a
real S3-compatible server (moto, its own process) and a real gateway, driven by Algorithmia's own
client (PyPI ``algorithmia==2.0.5``, unchanged) and by raw HTTP; what landed is read back from
the S3 server with boto3."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import Algorithmia
import httpx
import pytest
from Algorithmia.acl import ReadAcl
from Algorithmia.errors import DataApiError
from pydantic import ValidationError
from starlette.testclient import TestClient

from algora.app import create_app
from algora.auth.delegation import principal_caller
from algora.auth.principals import Caller, Delegation
from algora.db.tables import Principal
from algora.errors import NotFound
from algora.settings import DataConnector, Settings
from algora.store.connector_space import parse_location
from algora.testing import RunningServer

from ..helpers import new_users
from ..s3server import SECRET_KEY, S3Server

CAP = 20 * 1024 * 1024
BUCKETS = ("lake-data", "open-data", "vault-data", "other-data")


@dataclass
class World:
    s3: S3Server
    server: RunningServer
    keys: dict[str, str]

    @property
    def boto(self) -> Any:
        return self.s3.client()

    def client(self, who: str) -> Any:
        return Algorithmia.client(self.keys[who], self.server.url)

    def req(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Simple {self.keys[who]}", **kwargs.pop("headers", {})}
        return httpx.request(method, self.server.url + path, headers=headers, timeout=60, **kwargs)

    def data(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.req(who, method, "/v1/data/" + path, **kwargs)

    def names(self, bucket: str, prefix: str = "") -> list[str]:
        listed = self.boto.list_objects_v2(Bucket=bucket, Prefix=prefix)
        return [item["Key"] for item in listed.get("Contents", [])]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("s3-connectors")
    with S3Server(root) as s3:
        boto = s3.client()
        for bucket in BUCKETS:
            boto.create_bucket(Bucket=bucket)
        down = S3Server(root)  # never started: its port refuses connections
        connectors = {
            # In order: s3://lake-data reads through "lake" for its readers and writers,
            # through "mirror" for everyone else, and writes only through "lake".
            "lake": s3.connector(["lake-data"], readers=["analysts"], writers=["dora", "etl"]),
            "mirror": s3.connector(["lake-data", "open-data"], readers=["*"]),
            "vault": s3.connector(["vault-data"], readers=["analysts"], writers=["dora"]),
            "down": {**s3.connector(["down-data"], readers=["*"]), "endpoint_url": down.url},
        }
        env = {
            "ALGORA_DATA_CONNECTORS": json.dumps(connectors),
            "ALGORA_MAX_DATA_FILE_BYTES": str(CAP),
        }
        with RunningServer(root / "data", env=env) as server:
            keys = {"admin": server.key}
            admin = {"Authorization": f"Simple {server.key}"}

            def ok(response: httpx.Response) -> Any:
                assert response.status_code < 300, response.text
                return response.json()

            with server.client() as sdk:
                keys.update(new_users(sdk, "dora", "otto", "eve", "mel", "vic"))
            for org, member, role in (("analysts", "otto", "member"), ("etl", "mel", "member")):
                ok(httpx.post(server.url + "/api/v1/orgs", json={"name": org}, headers=admin))
                ok(
                    httpx.put(
                        f"{server.url}/api/v1/orgs/{org}/members/{member}",
                        json={"role": role},
                        headers=admin,
                    )
                )
            ok(
                httpx.put(
                    server.url + "/api/v1/orgs/etl/members/vic",
                    json={"role": "viewer"},
                    headers=admin,
                )
            )
            yield World(s3, server, keys)


def test_the_algorithmia_client_reads_and_writes_a_bucket(world: World) -> None:
    client = world.client("dora")
    text = client.file("s3://lake-data/hello.txt")
    assert not text.exists()
    text.put("hello s3")
    assert text.exists()
    assert text.getString() == "hello s3"
    assert world.boto.get_object(Bucket="lake-data", Key="hello.txt")["Body"].read() == b"hello s3"
    doc = client.file("s3://lake-data/doc.json").putJson({"a": [1, 2]})
    assert doc.getJson() == {"a": [1, 2]}
    raw = client.file("s3://lake-data/raw.bin").put(b"\x00\x01\xff")
    assert raw.getBytes() == b"\x00\x01\xff"

    folder = client.dir("s3://lake-data/reports")
    assert not folder.exists()
    folder.create()
    assert folder.exists()
    assert world.names("lake-data", "reports") == ["reports/"]  # the folder's marker
    folder.file("q1.csv").put("a,b\n1,2\n")
    folder.dir("2024").create()
    folder.file("2024/q2.csv").put("c\n")
    files = {f.getName(): f for f in folder.files()}
    assert set(files) == {"q1.csv"}
    assert files["q1.csv"].size == 8 and files["q1.csv"].last_modified is not None
    assert [d.getName() for d in folder.dirs()] == ["2024"]
    top = client.dir("s3://lake-data")
    assert "reports" in [d.getName() for d in top.dirs()]
    assert {"hello.txt", "doc.json", "raw.bin"} <= {f.getName() for f in top.files()}
    assert folder.get_permissions() is None  # connector folders have no ACLs of their own
    with pytest.raises(DataApiError, match="force"):
        folder.delete()
    assert folder.delete(force=True) is True
    assert world.names("lake-data", "reports") == []
    assert not folder.exists()
    assert text.delete() is True
    assert not text.exists()
    assert "hello.txt" not in world.names("lake-data")


def test_listings_page_with_an_opaque_marker(world: World) -> None:
    count = 1003  # more than one page of 1000
    boto = world.boto

    def put(i: int) -> None:
        boto.put_object(Bucket="lake-data", Key=f"many/f{i:05d}", Body=b"x")

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, range(count)))
    seen: list[str] = []
    marker = None
    pages = 0
    while True:
        params = {"limit": "400", **({"marker": marker} if marker else {})}
        page = world.data("dora", "GET", "s3://lake-data/many", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        pages += 1
        seen += [f["filename"] for f in body["files"]]
        for f in body["files"]:
            assert f["size"] == 1
            assert f["last_modified"].endswith("Z") and len(f["last_modified"]) == 24
        marker = body.get("marker")
        if not marker:
            break
    assert pages == 3
    assert seen == [f"f{i:05d}" for i in range(count)]
    names = [f.getName() for f in world.client("dora").dir("s3://lake-data/many").files()]
    assert names == seen
    bad = world.data("dora", "GET", "s3://lake-data/many", params={"marker": "not ours!"})
    assert bad.status_code == 400 and "marker" in bad.json()["error"]["message"]
    assert world.client("dora").dir("s3://lake-data/many").delete(force=True)
    assert world.names("lake-data", "many/") == []


def test_pages_name_each_folder_once_among_files(world: World) -> None:
    keys = ["mixed/", "mixed/a", "mixed/b.txt", "mixed/c", "mixed/e"]
    keys += [f"mixed/b/{i}" for i in range(3)] + [f"mixed/d/{i}/x" for i in range(3)]
    for key in keys:
        world.boto.put_object(Bucket="lake-data", Key=key, Body=b"")
    folders: list[str] = []
    files: list[str] = []
    marker = None
    while True:
        params = {"limit": "2", **({"marker": marker} if marker else {})}
        body = world.data("dora", "GET", "s3://lake-data/mixed", params=params).json()
        folders += [f["name"] for f in body["folders"]]
        files += [f["filename"] for f in body["files"]]
        marker = body.get("marker")
        if not marker:
            break
    assert folders == ["b", "d"]
    assert files == ["a", "b.txt", "c", "e"]
    assert world.data(
        "dora", "DELETE", "s3://lake-data/mixed", params={"force": "true"}
    ).json() == {"result": {"deleted": 10}}


def test_large_files_go_up_in_parts_and_the_cap_holds(world: World, tmp_path: Path) -> None:
    client = world.client("dora")
    local = tmp_path / "big.bin"
    local.write_bytes(os.urandom(12 * 1024 * 1024))
    remote = client.file("s3://lake-data/big/big.bin").putFile(str(local))
    head = world.boto.head_object(Bucket="lake-data", Key="big/big.bin")
    assert head["ContentLength"] == 12 * 1024 * 1024
    assert head["ETag"].strip('"').endswith("-2")  # a multipart upload of two parts
    digest = hashlib.sha256(remote.getBytes()).hexdigest()
    assert digest == hashlib.sha256(local.read_bytes()).hexdigest()

    too_big = client.file("s3://lake-data/big/too-big.bin")
    with pytest.raises(Exception, match="413"):  # the client raises a bare Exception
        too_big.put(b"z" * (CAP + 1))

    def chunks() -> Iterator[bytes]:  # no Content-Length: stopped while streaming, in parts
        for _ in range(CAP // (1024 * 1024) + 2):
            yield b"y" * (1024 * 1024)

    streamed = world.data("dora", "PUT", "s3://lake-data/big/too-big.bin", content=chunks())
    assert streamed.status_code == 413, streamed.text
    assert not too_big.exists()
    assert world.names("lake-data", "big/") == ["big/big.bin"]
    uploads = world.boto.list_multipart_uploads(Bucket="lake-data")
    assert uploads.get("Uploads", []) == []  # the aborted upload left no parts behind
    assert client.dir("s3://lake-data/big").delete(force=True)


def test_the_admins_connector_lists_decide_who_reads_and_writes(world: World) -> None:
    assert world.data("dora", "PUT", "s3://vault-data/secret.txt", content=b"s").status_code == 200
    assert world.data("dora", "PUT", "s3://lake-data/shared.txt", content=b"l").status_code == 200
    # otto reads the vault as a member of analysts, and may not write it.
    assert world.data("otto", "GET", "s3://vault-data/secret.txt").content == b"s"
    refused = world.data("otto", "PUT", "s3://vault-data/secret.txt", content=b"x")
    assert refused.status_code == 403
    assert "write" in refused.json()["error"]["message"]
    # eve is on no list of the vault's: it looks missing, for reads and writes alike.
    for method in ("GET", "PUT", "DELETE"):
        hidden = world.data("eve", method, "s3://vault-data/secret.txt", content=b"x")
        assert hidden.status_code == 404, (method, hidden.text)
    head = world.data("eve", "HEAD", "s3://vault-data/secret.txt")
    assert head.status_code == 404 and head.headers["X-Error-Message"]
    assert not world.client("eve").file("s3://vault-data/secret.txt").exists()
    # lake-data: everyone reads it through "mirror"; "lake" lets dora and etl's members write.
    assert world.data("eve", "GET", "s3://lake-data/shared.txt").content == b"l"
    assert world.data("eve", "PUT", "s3://lake-data/shared.txt", content=b"x").status_code == 403
    assert world.data("vic", "PUT", "s3://lake-data/shared.txt", content=b"x").status_code == 403
    assert world.data("mel", "PUT", "s3://lake-data/by-mel", content=b"m").status_code == 200
    assert world.data("admin", "PUT", "s3://vault-data/by-admin", content=b"a").status_code == 200
    assert world.boto.get_object(Bucket="vault-data", Key="secret.txt")["Body"].read() == b"s"
    # A named connector serves only its own buckets.
    via_mirror = world.data("eve", "GET", "s3+mirror://lake-data/shared.txt")
    assert via_mirror.content == b"l"
    assert world.data("eve", "GET", "s3+lake://lake-data/shared.txt").status_code == 404
    assert world.data("dora", "GET", "s3+vault://lake-data/shared.txt").status_code == 404
    # Buckets no connector lists, connectors that do not exist, schemes that are not S3.
    for path in (
        "s3://other-data/x",
        "s3+nope://lake-data/shared.txt",
        "dropbox://x/y",
        "s3://lake-data/no-such-file",
    ):
        assert world.data("admin", "GET", path).status_code == 404, path
    # The root lists the buckets each caller may read.
    eve_root = world.data("eve", "GET", "s3://").json()
    assert eve_root == {
        "folders": [{"name": b} for b in ("down-data", "lake-data", "open-data")],
        "files": [],
    }
    dora_root = [f["name"] for f in world.data("dora", "GET", "s3://").json()["folders"]]
    assert "vault-data" in dora_root
    assert world.data("eve", "GET", "s3+vault://").status_code == 404


def test_key_scopes_narrow_connectors(world: World) -> None:
    assert world.data("dora", "PUT", "s3://vault-data/v.txt", content=b"v").status_code == 200
    assert world.data("dora", "PUT", "s3://lake-data/l.txt", content=b"l").status_code == 200

    def key(*scopes: str) -> str:
        made = world.req("dora", "POST", "/api/v1/keys", json={"name": "s", "scopes": scopes})
        assert made.status_code == 201, made.text
        return str(made.json()["key"])

    world.keys["dora-vault"] = key("data:read:s3.vault/*")
    assert world.data("dora-vault", "GET", "s3://vault-data/v.txt").content == b"v"
    refused = world.data("dora-vault", "GET", "s3://lake-data/l.txt")
    assert refused.status_code == 403
    assert "s3.lake/lake-data" in refused.json()["error"]["message"]
    assert world.data("dora-vault", "PUT", "s3://vault-data/v.txt", content=b"x").status_code == 403
    root = world.data("dora-vault", "GET", "s3://").json()
    assert root["folders"] == [{"name": "vault-data"}]
    world.keys["dora-lake-writer"] = key("data:read", "data:write:s3.lake/lake-data")
    writer = "dora-lake-writer"
    assert world.data(writer, "PUT", "s3://lake-data/l.txt", content=b"w").status_code == 200
    assert world.data(writer, "PUT", "s3://vault-data/v.txt", content=b"w").status_code == 403
    world.keys["dora-models"] = key("models:read")
    assert world.data("dora-models", "GET", "s3://lake-data/l.txt").status_code == 403
    assert world.boto.get_object(Bucket="vault-data", Key="v.txt")["Body"].read() == b"v"


def test_the_connector_routes_serve_the_same_objects(world: World) -> None:
    base = "/v1/connector"
    put = world.req("dora", "PUT", f"{base}/s3/lake-data/routes/a.txt", content=b"via route")
    assert put.status_code == 200, put.text
    assert put.json() == {"result": "s3://lake-data/routes/a.txt"}
    assert world.data("dora", "GET", "s3://lake-data/routes/a.txt").content == b"via route"
    assert world.req("dora", "GET", f"{base}/s3+lake/lake-data/routes/a.txt").content == (
        b"via route"
    )
    head = world.req("dora", "HEAD", f"{base}/s3/lake-data/routes")
    assert head.status_code == 200 and head.headers["X-Data-Type"] == "directory"
    made = world.req("dora", "POST", f"{base}/s3/lake-data/routes", json={"name": "sub"})
    assert made.status_code == 200 and made.json() == {"result": "s3://lake-data/routes/sub"}
    listed = world.req("dora", "GET", f"{base}/s3/lake-data/routes").json()
    assert listed["folders"] == [{"name": "sub"}]
    assert [f["filename"] for f in listed["files"]] == ["a.txt"]
    assert world.req("eve", "PUT", f"{base}/s3/lake-data/routes/b", content=b"").status_code == 403
    assert world.req("dora", "GET", f"{base}/dropbox/x/y").status_code == 404
    assert world.req("dora", "GET", f"{base}/data/dora/x").status_code == 404
    gone = world.req("dora", "DELETE", f"{base}/s3/lake-data/routes", params={"force": "true"})
    assert gone.json() == {"result": {"deleted": 1}}
    assert world.names("lake-data", "routes") == []


def test_shapes_and_names_are_checked(world: World) -> None:
    assert world.data("dora", "PUT", "s3://lake-data/shape/f", content=b"1").status_code == 200
    bad_paths = (
        "s3://Bad_Bucket/x",
        "s3://ab/x",
        "s3://1.2.3.4/x",
        "s3://lake..data/x",
        "s3://lake-data/shape/%2e%2e/x",
        "s3://lake-data/shape//x",
        "s3://lake-data/a%00b",
        "s3://lake-data/a%5cb",
        "s3://lake-data/a%09b",
        "s3://lake-data/" + "k" * 1100,
    )
    for bad in bad_paths:
        response = world.data("dora", "PUT", bad, content=b"x")
        assert response.status_code == 400, (bad, response.status_code, response.text)
        assert response.json()["error"]["message"]
        assert world.req("dora", "GET", "/v1/connector/" + bad.replace("://", "/")).status_code in (
            400,
            404,
        )
    for name in ("..", "a/b", "", "x\\y"):
        made = world.data("dora", "POST", "s3://lake-data/shape", json={"name": name})
        assert made.status_code == 400, (name, made.text)
    assert world.names("lake-data", "shape") == ["shape/f"]
    assert world.names("lake-data", "x") == []
    # What a bucket or a connector cannot do through the data API.
    assert world.data("admin", "POST", "s3://", json={"name": "new-bucket"}).status_code == 400
    assert (
        world.data("admin", "DELETE", "s3://lake-data", params={"force": "true"}).status_code == 400
    )
    assert world.data("dora", "PUT", "s3://lake-data", content=b"x").status_code == 400
    acl = {"name": "private", "acl": {"read": []}}
    assert world.data("dora", "POST", "s3://lake-data/shape", json=acl).status_code == 400
    patched = world.data("dora", "PATCH", "s3://lake-data/shape", json={"acl": {"read": []}})
    assert patched.status_code == 400 and "ACL" in patched.json()["error"]["message"]
    with pytest.raises(Exception, match="400"):  # the client raises a bare Exception
        world.client("dora").dir("s3://lake-data/shape/p").create(ReadAcl.private)
    # A folder and a file of one name do not replace each other.
    assert world.data("dora", "PUT", "s3://lake-data/shape", content=b"x").status_code == 409
    assert world.data("dora", "POST", "s3://lake-data", json={"name": "shape"}).status_code == 409
    assert world.data("dora", "GET", "s3://lake-data/shape", params={"acl": "true"}).json() == {}
    assert world.data("dora", "DELETE", "s3://lake-data/nothing-here").status_code == 404


def test_writes_are_audited(world: World) -> None:
    assert world.data("mel", "PUT", "s3://lake-data/audit/a", content=b"1").status_code == 200
    route = "/v1/connector/s3/lake-data/audit"
    assert world.req("mel", "POST", route, json={"name": "sub"}).status_code == 200
    assert world.data("mel", "DELETE", "s3://lake-data/audit/a").status_code == 200
    assert world.data("vic", "PUT", "s3://lake-data/audit/b", content=b"1").status_code == 403
    rows = world.req("admin", "GET", "/api/v1/audit", params={"limit": "1000"}).json()
    seen = {(r["action"], r["resource"], r["principal"], r["status"]) for r in rows}
    assert {
        ("data.put", "s3+lake://lake-data/audit/a", "mel", 200),
        ("data.create", "s3+lake://lake-data/audit/sub", "mel", 200),
        ("data.delete", "s3+lake://lake-data/audit/a", "mel", 200),
        ("data.put", "s3://lake-data/audit/b", "vic", 403),
    } <= seen


def test_an_unreachable_endpoint_is_a_clean_503(world: World) -> None:
    got = world.data("eve", "GET", "s3://down-data/x")
    assert got.status_code == 503, got.text
    assert "cannot be reached" in got.json()["error"]["message"]
    head = world.data("eve", "HEAD", "s3://down-data/x")
    assert head.status_code == 503 and "cannot be reached" in head.headers["X-Error-Message"]


def test_the_connectors_secret_is_never_shown(world: World) -> None:
    document = world.req("admin", "GET", "/api/v1/openapi.json").text
    assert SECRET_KEY not in document
    assert SECRET_KEY not in world.server.log()
    assert world.data("eve", "GET", "s3://down-data/x").text.find(SECRET_KEY) == -1


# -- Settings --------------------------------------------------------------------------------
def _connector(**changes: Any) -> dict[str, Any]:
    return {"access_key_id": "id", "secret_access_key": "TOPSECRET", "buckets": ["b-1"], **changes}


def test_connectors_come_from_json_and_hide_their_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ALGORA_DATA_CONNECTORS", json.dumps({"lake": _connector()}))
    settings = Settings(data_dir=tmp_path)
    connector = settings.data_connectors["lake"]
    assert isinstance(connector, DataConnector)
    assert connector.secret_access_key.get_secret_value() == "TOPSECRET"
    assert "TOPSECRET" not in repr(settings) and "TOPSECRET" not in str(connector)


@pytest.mark.parametrize(
    ("name", "config", "problem"),
    [
        ("Lake", _connector(), "data_connectors"),
        ("lake", _connector(buckets=["Bad_Bucket"]), "bucket name"),
        ("lake", _connector(buckets=[]), "buckets"),
        ("lake", _connector(endpoint_url="file:///etc"), "endpoint_url"),
        ("lake", _connector(readers=["not a name"]), "not a principal"),
        ("lake", _connector(type="dropbox"), "type"),
        ("lake", {**_connector(), "secret_acess_key": "TOPSECRET"}, "secret_acess_key"),
    ],
)
def test_bad_connector_settings_are_refused_without_echoing_them(
    name: str, config: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(data_connectors={name: config})
    assert problem in str(raised.value)
    assert "TOPSECRET" not in str(raised.value)


def test_a_platform_without_connectors_finds_no_bucket(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path / "data"))) as http:
        key = (tmp_path / "data" / "admin.key").read_text().strip()
        headers = {"Authorization": f"Simple {key}"}
        assert http.get("/v1/data/s3://lake-data/x", headers=headers).status_code == 404
        assert http.head("/v1/data/s3://", headers=headers).status_code == 404
        root = http.get("/v1/data/s3://", headers=headers).json()
        assert root == {"folders": [], "files": []}


def test_model_code_uses_a_connector_only_where_caller_and_owner_both_may(
    tmp_path: Path,
) -> None:
    """A credential inside a model is bounded by its caller and the model's owner (see
    ``algora.auth.delegation``): connectors are no way around that."""
    connector = {"access_key_id": "id", "secret_access_key": "s", "buckets": ["vault-data"]}
    connectors = {"vault": {**connector, "readers": ["dora"], "writers": ["dora"]}}
    settings = Settings(data_dir=tmp_path / "data", data_connectors=connectors)
    with TestClient(create_app(settings)) as http:
        key = (tmp_path / "data" / "admin.key").read_text().strip()
        for user in ("dora", "eve"):
            made = http.post(
                "/api/v1/principals", json={"name": user}, headers={"Authorization": key}
            )
            assert made.status_code == 201, made.text
        platform = http.app.state.platform  # type: ignore[attr-defined]
        with platform.sessions() as session:
            people = {p.name: principal_caller(p) for p in session.query(Principal).all()}
    where = parse_location("s3://vault-data/f")
    choose = platform.data_spaces.connectors.choose

    def delegated(*bounds: Caller) -> Caller:
        first = bounds[0] if bounds else people["eve"]
        delegation = Delegation(bounds=bounds, model="eve/m", model_owner_id=first.principal_id)
        return replace(first, is_admin=False, delegation=delegation)

    assert choose(people["dora"], where, "write").name == "vault"
    assert choose(delegated(people["dora"], people["dora"]), where, "write")
    for bounds in ((people["dora"], people["eve"]), (people["admin"], people["eve"]), ()):
        with pytest.raises(NotFound):
            choose(delegated(*bounds), where, "read")
