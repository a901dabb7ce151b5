"""``algora data`` as a subprocess, and the SDK's ``client.data(...)``, against a real server
(with an S3 connector on a real S3-compatible server) over the ``/v1/data`` API."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from algora.errors import (
    BadRequest,
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    Unauthenticated,
)
from algora.sdk.client import Client
from algora.sdk.data import DataUri
from algora.testing import RunningServer

from ..helpers import new_users
from ..s3server import S3Server

CAP = 8 * 1024 * 1024
BUCKET = "cli-lake"


@dataclass
class World:
    server: RunningServer
    s3: S3Server
    keys: dict[str, str]

    def env(self, who: str) -> dict[str, str]:
        return {"ALGORA_URL": self.server.url, "ALGORA_KEY": self.keys[who]}

    def client(self, who: str, **http: Any) -> Client:
        transport = httpx.Client(base_url=self.server.url, timeout=60, **http)
        return Client(self.server.url, self.keys[who], http=transport)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("data-cli")
    with S3Server(root) as s3:
        s3.client().create_bucket(Bucket=BUCKET)
        env = {
            "ALGORA_DATA_CONNECTORS": json.dumps(
                {"lake": s3.connector([BUCKET], writers=["dora"])}
            ),
            "ALGORA_MAX_DATA_FILE_BYTES": str(CAP),
        }
        with RunningServer(root / "data", env=env) as server, server.client() as admin:
            keys = {"admin": server.key, **new_users(admin, "dora", "otto")}
            yield World(server, s3, keys)


def algora(world: World, who: str, *args: str, cwd: Path | None = None):
    done = subprocess.run(
        [sys.executable, "-m", "algora", "data", *args],
        capture_output=True,
        env={**os.environ, "COLUMNS": "200", **world.env(who)},
        cwd=cwd,
        timeout=300,
    )
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    return done


def ok(done: subprocess.CompletedProcess[bytes]) -> str:
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def fails(done: subprocess.CompletedProcess[bytes], code: str) -> str:
    """The command failed with exit status 1 and one clear line naming ``code``."""
    err = done.stderr.decode()
    assert done.returncode == 1, (done.stdout.decode(), err)
    assert f"({code})" in err if code else "error" in err, err
    return " ".join(err.split())


def tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def make_tree(folder: Path) -> dict[str, bytes]:
    (folder / "sub" / "deep").mkdir(parents=True)
    (folder / "empty-dir").mkdir()
    (folder / "a.txt").write_text("hello\n")
    (folder / "naïve café.txt").write_text("unicode names travel\n")
    (folder / "sub" / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (folder / "sub" / "deep" / "empty.bin").write_bytes(b"")
    (folder / "sub" / "deep" / "c.json").write_text('{"c": 1}')
    (folder / "link").symlink_to("/etc/hostname")
    return tree(folder)


# CLI ----------------------------------------------------------------------------------------
def test_a_folder_tree_goes_up_and_comes_back_byte_identical(world: World, tmp_path: Path) -> None:
    local = tmp_path / "export"
    local.mkdir()
    files = make_tree(local)
    assert "made data://dora/proj" in ok(algora(world, "dora", "mkdir", "data://.my/proj"))
    up = algora(world, "dora", "cp", "-r", str(local), "data://.my/proj")
    assert "copied 5 file(s)" in ok(up) and "data://.my/proj/export" in up.stdout.decode()
    assert "skipped 1 link" in up.stderr.decode()  # links are not followed

    listed = json.loads(ok(algora(world, "dora", "ls", "dora/proj/export", "--json")))
    assert [(e["name"], e["type"]) for e in listed] == [
        ("empty-dir", "directory"),
        ("sub", "directory"),
        ("a.txt", "file"),
        ("naïve café.txt", "file"),
    ]
    assert listed[2]["size"] == 6 and listed[2]["uri"] == "data://dora/proj/export/a.txt"
    table = ok(algora(world, "dora", "ls", "data://.my/proj/export/sub"))
    assert "deep/" in table and "big.bin" in table and "3.0 MiB" in table
    one = ok(algora(world, "dora", "ls", "data://.my/proj/export/sub/big.bin"))
    assert "big.bin" in one and "deep" not in one
    cat = algora(world, "dora", "cat", "data://.my/proj/export/sub/big.bin")
    assert cat.returncode == 0 and cat.stdout == files["sub/big.bin"]

    back = tmp_path / "back"
    ok(algora(world, "dora", "cp", "-r", "data://.my/proj/export", str(back)))
    assert tree(back) == files
    assert (back / "empty-dir").is_dir() and not (back / "link").exists()
    assert stat.S_IMODE((back / "sub" / "big.bin").stat().st_mode) == 0o600
    assert not list(back.rglob(".algora-download-*"))
    into = tmp_path / "into"
    into.mkdir()
    ok(algora(world, "dora", "cp", "-r", "data://.my/proj/export", str(into) + "/"))
    assert tree(into / "export") == files

    # between two URIs, through the client
    ok(algora(world, "dora", "cp", "-r", "data://.my/proj/export", "data://.my/proj/copy"))
    again = tmp_path / "again"
    ok(algora(world, "dora", "cp", "-r", "data://.my/proj/copy", str(again)))
    assert tree(again) == files
    single = tmp_path / "single.bin"
    ok(algora(world, "dora", "cp", "data://.my/proj/copy/sub/big.bin", str(single)))
    assert single.read_bytes() == files["sub/big.bin"]


def test_nothing_is_replaced_without_force(world: World, tmp_path: Path) -> None:
    ok(algora(world, "dora", "mkdir", "data://.my/keep"))
    local = tmp_path / "work"
    local.mkdir()
    (local / "one.txt").write_text("first")
    (local / "two.txt").write_text("second")
    ok(algora(world, "dora", "cp", "-r", str(local), "data://.my/keep/"))
    (local / "one.txt").write_text("changed")
    (local / "three.txt").write_text("new")
    refused = fails(algora(world, "dora", "cp", "-r", str(local), "data://.my/keep"), "conflict")
    assert "--force" in refused and "nothing was copied" in refused
    names = json.loads(ok(algora(world, "dora", "ls", "data://.my/keep/work", "--json")))
    assert [e["name"] for e in names] == ["one.txt", "two.txt"]  # not even three.txt
    ok(algora(world, "dora", "cp", "-r", "--force", str(local), "data://.my/keep"))
    assert ok(algora(world, "dora", "cat", "data://.my/keep/work/one.txt")) == "changed"
    ok(algora(world, "dora", "cp", "-r", str(local), "data://.my/keep/made/on/the-way"))
    made = json.loads(ok(algora(world, "dora", "ls", "data://.my/keep/made/on/the-way", "--json")))
    assert [e["name"] for e in made] == ["one.txt", "three.txt", "two.txt"]

    file_refused = algora(world, "dora", "cp", str(local / "two.txt"), "data://.my/keep/work/")
    assert "--force" in fails(file_refused, "conflict")
    down = tmp_path / "down.txt"
    down.write_text("mine")
    local_refused = algora(world, "dora", "cp", "data://.my/keep/work/one.txt", str(down))
    assert "--force" in fails(local_refused, "conflict")
    assert down.read_text() == "mine"
    ok(algora(world, "dora", "cp", "-f", "data://.my/keep/work/one.txt", str(down)))
    assert down.read_text() == "changed"


def test_a_failed_upload_leaves_nothing_half_written(world: World, tmp_path: Path) -> None:
    ok(algora(world, "dora", "mkdir", "data://.my/caps"))
    ok(algora(world, "dora", "cp", _write(tmp_path / "f.bin", b"old"), "data://.my/caps/f.bin"))
    too_big = _write(tmp_path / "big.bin", os.urandom(CAP + 1))
    refused = algora(world, "dora", "cp", "-f", too_big, "data://.my/caps/f.bin")
    assert "at most" in fails(refused, "payload_too_large")
    assert ok(algora(world, "dora", "cat", "data://.my/caps/f.bin")) == "old"
    new = algora(world, "dora", "cp", too_big, "data://.my/caps/new.bin")
    fails(new, "payload_too_large")
    fails(algora(world, "dora", "cat", "data://.my/caps/new.bin"), "not_found")
    on_disk = world.server.data_dir / "collections" / "dora" / "caps"
    assert sorted(p.name for p in on_disk.iterdir()) == ["f.bin"]  # no temporary file left


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_mkdir_and_acls_decide_who_reads(world: World, tmp_path: Path) -> None:
    ok(algora(world, "dora", "mkdir", "data://.my/shared", "--acl", "private"))
    assert "private (its owner only)" in ok(algora(world, "dora", "acl", "data://.my/shared"))
    ok(algora(world, "dora", "cp", _write(tmp_path / "r.txt", b"report"), "data://dora/shared/"))
    # a second user: a private collection looks missing; a public one reads but is not theirs
    fails(algora(world, "otto", "ls", "data://dora/shared"), "not_found")
    fails(algora(world, "otto", "cat", "data://dora/shared/r.txt"), "not_found")
    setting = ok(algora(world, "dora", "acl", "data://.my/shared", "--set", "public"))
    assert "public (user://*)" in setting
    shown = json.loads(ok(algora(world, "dora", "acl", "dora/shared", "--json")))
    assert shown == {"uri": "data://dora/shared", "acl": {"read": ["user://*"]}}
    assert ok(algora(world, "otto", "cat", "data://dora/shared/r.txt")) == "report"
    write = algora(world, "otto", "cp", str(tmp_path / "r.txt"), "data://dora/shared/x.txt")
    assert "may not write" in fails(write, "permission_denied")
    fails(
        algora(world, "otto", "acl", "data://dora/shared", "--set", "private"), "permission_denied"
    )
    fails(algora(world, "otto", "mkdir", "data://dora/theirs"), "permission_denied")
    listing = json.loads(ok(algora(world, "dora", "ls", "data://.my", "--json")))
    shared = next(e for e in listing if e["name"] == "shared")
    assert shared["acl"] == {"read": ["user://*"], "name": "public"}
    ok(algora(world, "dora", "mkdir", "data://.my/models-read", "--acl", "my-models"))
    assert "my-models" in ok(algora(world, "dora", "acl", "data://.my/models-read"))

    # folders: -p makes the ones on the way; ACLs belong to collections only
    ok(algora(world, "dora", "mkdir", "-p", "data://.my/shared/a/b/c"))
    ok(algora(world, "dora", "mkdir", "-p", "data://.my/shared/a/b/c"))
    fails(algora(world, "dora", "mkdir", "data://.my/shared/a"), "conflict")
    fails(algora(world, "dora", "mkdir", "data://.my/shared/x/y"), "not_found")
    folder_acl = algora(world, "dora", "mkdir", "data://.my/shared/z", "--acl", "public")
    assert "belong to collections" in fails(folder_acl, "invalid_input")
    fails(algora(world, "dora", "acl", "data://.my/shared/a"), "invalid_input")
    assert algora(world, "dora", "mkdir", "data://.my/c2", "--acl", "everyone").returncode == 2


def test_rm_deletes_files_and_folders_only_with_force_when_not_empty(world: World) -> None:
    ok(algora(world, "dora", "mkdir", "-p", "data://.my/trash/full/inner"))
    ok(algora(world, "dora", "mkdir", "data://.my/trash/hollow"))
    for name in ("full/one.txt", "full/inner/two.txt", "loose.txt"):
        with world.client("dora") as client:
            client.data(f"data://.my/trash/{name}").write(b"x")
    assert "1 file(s)" in ok(algora(world, "dora", "rm", "data://.my/trash/loose.txt"))
    refused = fails(algora(world, "dora", "rm", "data://.my/trash/full"), "invalid_input")
    assert "not empty" in refused and "-r" in refused
    ok(algora(world, "dora", "ls", "data://.my/trash/full/inner"))  # still there
    ok(algora(world, "dora", "rm", "data://.my/trash/hollow"))  # empty: no flag needed
    assert "2 file(s)" in ok(algora(world, "dora", "rm", "--force", "data://.my/trash/full"))
    fails(algora(world, "dora", "rm", "data://.my/trash/full"), "not_found")
    fails(algora(world, "otto", "rm", "-r", "data://dora/trash"), "not_found")
    ok(algora(world, "dora", "mkdir", "data://.my/trash/again"))
    fails(algora(world, "dora", "rm", "data://.my/trash"), "invalid_input")
    ok(algora(world, "dora", "rm", "-r", "data://.my/trash"))
    fails(algora(world, "dora", "ls", "data://.my/trash"), "not_found")
    fails(algora(world, "dora", "rm", "data://.my"), "invalid_input")


def test_errors_are_one_clear_line(world: World, tmp_path: Path) -> None:
    fails(algora(world, "dora", "ls", "data://.my/no-such-collection"), "not_found")
    fails(algora(world, "dora", "cat", "data://nobody-here/x/y"), "not_found")
    for bad in ("ftp://host/x", "data://.my/../etc", "data://.my/a//b", "/etc/passwd"):
        fails(algora(world, "dora", "ls", bad), "invalid_input")
    fails(algora(world, "dora", "cp", "data://.my/x\\y", str(tmp_path)), "invalid_input")
    both_local = algora(world, "dora", "cp", str(tmp_path), str(tmp_path / "x"))
    assert "must be hosted data" in fails(both_local, "invalid_input")
    folder = algora(world, "dora", "cp", str(tmp_path), "data://.my/anything")
    assert "-r" in fails(folder, "invalid_input")
    ok(algora(world, "dora", "mkdir", "data://.my/errs"))
    assert "is a folder" in fails(algora(world, "dora", "cat", "data://.my/errs"), "invalid_input")
    missing = algora(world, "dora", "cp", str(tmp_path / "nope"), "data://.my/errs/")
    fails(missing, "not_found")
    wrong_key = subprocess.run(
        [sys.executable, "-m", "algora", "data", "ls"],
        capture_output=True,
        env={**os.environ, "ALGORA_URL": world.server.url, "ALGORA_KEY": "simWRONG"},
        timeout=120,
    )
    fails(wrong_key, "unauthenticated")


def test_listed_names_never_lead_outside_the_destination(world: World, tmp_path: Path) -> None:
    """A bucket can hold keys such as ``hostile/../escape.txt``: its listing names a folder
    ``..``. Copying it down is refused before anything is written."""
    boto = world.s3.client()
    boto.put_object(Bucket=BUCKET, Key="hostile/fine.txt", Body=b"fine")
    boto.put_object(Bucket=BUCKET, Key="hostile/../escape.txt", Body=b"escaped")
    listed = json.loads(ok(algora(world, "dora", "ls", "s3://cli-lake/hostile", "--json")))
    assert ".." in [e["name"] for e in listed]
    out = tmp_path / "out"
    refused = algora(world, "dora", "cp", "-r", "s3://cli-lake/hostile", str(out))
    message = fails(refused, "invalid_input")
    assert "'..'" in message and "nothing was copied" in message
    assert not out.exists() and not (tmp_path / "escape.txt").exists()
    remote = algora(world, "dora", "cp", "-r", "s3://cli-lake/hostile", "data://.my/proj/h")
    fails(remote, "invalid_input")

    # a link inside the destination folder is not followed out of it
    ok(algora(world, "dora", "mkdir", "-p", "data://.my/linked/sub"))
    with world.client("dora") as client:
        client.data("data://.my/linked/sub/f.txt").write(b"in")
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    (dest / "linked").mkdir(parents=True)
    (dest / "linked" / "sub").symlink_to(outside)
    followed = algora(world, "dora", "cp", "-r", "-f", "data://.my/linked", str(dest))
    assert "outside" in fails(followed, "invalid_input")
    assert list(outside.iterdir()) == []


def test_s3_connectors_copy_like_collections(world: World, tmp_path: Path) -> None:
    local = tmp_path / "batch"
    local.mkdir()
    files = make_tree(local)
    ok(algora(world, "dora", "cp", "-r", str(local), "s3://cli-lake/"))
    keys = {o["Key"] for o in world.s3.client().list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert {"batch/a.txt", "batch/sub/big.bin", "batch/sub/deep/c.json"} <= keys
    ok(algora(world, "dora", "mkdir", "data://.my/from-s3"))
    ok(algora(world, "dora", "cp", "-r", "s3+lake://cli-lake/batch", "data://.my/from-s3/b"))
    down = tmp_path / "down"
    ok(algora(world, "dora", "cp", "-r", "data://.my/from-s3/b", str(down)))
    assert tree(down) == files and (down / "empty-dir").is_dir()
    fails(algora(world, "otto", "cp", str(local / "a.txt"), "s3://cli-lake/x.txt"), "not_found")
    no_acl = ok(algora(world, "dora", "acl", "s3://cli-lake/batch"))
    assert "no ACL" in no_acl


# SDK ----------------------------------------------------------------------------------------
def test_sdk_reads_writes_and_lists_every_page(world: World, tmp_path: Path) -> None:
    requests: list[httpx.Request] = []
    with world.client("dora", event_hooks={"request": [requests.append]}) as client:
        coll = client.data("data://.my/sdk")
        assert coll.kind() is None and not coll.exists()
        assert coll.mkdir(acl="private") == "data://dora/sdk"
        assert coll.acl() == []
        assert coll.set_acl("my-models") == ["algo://.my/*"]
        assert client.data("dora/sdk").acl() == ["algo://.my/*"]
        with pytest.raises(Conflict):
            coll.mkdir()

        source = _write(tmp_path / "blob.bin", os.urandom(2 * 1024 * 1024 + 3))
        seen: list[int] = []
        blob = coll.child("blob.bin")
        assert blob.upload(source, progress=seen.append) == "data://dora/sdk/blob.bin"
        assert sum(seen) == Path(source).stat().st_size and len(seen) > 1
        assert blob.kind() == "file" and coll.kind() == "directory"
        assert blob.read() == Path(source).read_bytes()
        got: list[int] = []
        assert blob.download(tmp_path / "copy.bin", progress=got.append) == sum(seen)
        assert (tmp_path / "copy.bin").read_bytes() == Path(source).read_bytes()
        assert sum(got) == sum(seen)

        coll.child("pages").mkdir()
        for i in range(5):
            coll.child("pages").child(f"f{i}").write(f"file {i}")
        coll.child("pages").child("dir").mkdir()
        coll.child("pages").child("g").write(iter([b"chu", b"nks"]))
        before = len(requests)
        entries = list(coll.child("pages").list(page_size=2))
        pages = [r for r in requests[before:] if r.method == "GET"]
        assert len(pages) == 4 and all(r.url.params["limit"] == "2" for r in pages)
        assert sorted(e.name for e in entries) == ["dir", "f0", "f1", "f2", "f3", "f4", "g"]
        assert [e.kind for e in entries if e.name == "dir"] == ["directory"]
        assert client.data("data://.my/sdk/pages/g").read() == b"chunks"
        assert {e.name for e in coll.child("pages").list()} == {e.name for e in entries}

        with pytest.raises(InvalidInput):
            list(blob.list())
        with pytest.raises(InvalidInput):
            coll.read()
        with pytest.raises(Conflict):  # a file is not a folder
            blob.mkdir()
        assert coll.child("pages").delete(force=True) == 6
        assert not coll.child("pages").exists()
        assert coll.delete(force=True) == 1


def test_sdk_raises_the_servers_errors(world: World) -> None:
    with world.client("dora") as dora, world.client("otto") as otto:
        dora.data("data://.my/sdk-errors").mkdir(acl="public")
        dora.data("data://.my/sdk-errors/f.txt").write("text")
        dora.data("data://.my/sdk-errors/full").mkdir()
        dora.data("data://.my/sdk-errors/full/x").write("x")
        assert otto.data("data://dora/sdk-errors/f.txt").read() == b"text"
        with pytest.raises(PermissionDenied):
            otto.data("data://dora/sdk-errors/g.txt").write("no")
        with pytest.raises(PermissionDenied):
            otto.data("data://dora/sdk-errors").set_acl("private")
        with pytest.raises(NotFound):
            otto.data("data://dora/no-such").read()
        with pytest.raises(NotFound):
            dora.data("data://.my/sdk-errors/missing.txt").read()
        with pytest.raises(BadRequest):  # not empty: the server says force
            dora.data("data://.my/sdk-errors/full").delete()
        with pytest.raises(InvalidInput):
            dora.data("data://.my/sdk-errors/f.txt").mkdir(acl="private")
        with pytest.raises(InvalidInput):
            dora.data("data://.my/sdk-errors").mkdir(acl="nobody")
    with world.client("dora") as dora:
        with pytest.raises(PayloadTooLarge):
            dora.data("data://.my/sdk-errors/huge").write(iter([b"\0" * (CAP + 1)]))
        assert not dora.data("data://.my/sdk-errors/huge").exists()
    with Client(world.server.url, "simWRONG") as stranger, pytest.raises(Unauthenticated):
        stranger.data("data://.my").kind()


@pytest.mark.parametrize(
    ("text", "scheme", "parts", "api"),
    [
        ("data://dora/c/a b.txt", "data", ("dora", "c", "a b.txt"), "/v1/data/dora/c/a%20b.txt"),
        ("data://.my/c/", "data", (".my", "c"), "/v1/data/.my/c"),
        ("dora/c/x#1?", "data", ("dora", "c", "x#1?"), "/v1/data/dora/c/x%231%3F"),
        ("data://", "data", (), "/v1/data/"),
        ("s3://bucket/k/v", "s3", ("bucket", "k", "v"), "/v1/connector/s3/bucket/k/v"),
        ("S3+lake://b/k", "s3+lake", ("b", "k"), "/v1/connector/s3+lake/b/k"),
    ],
)
def test_uris_parse_as_algorithmia_writes_them(
    text: str, scheme: str, parts: tuple[str, ...], api: str
) -> None:
    uri = DataUri.parse(text)
    assert (uri.scheme, uri.parts, uri.api_path) == (scheme, parts, api)


@pytest.mark.parametrize(
    "text", ["http://x/y", "data://a/../b", "data://a//b", "data://a/./b", "/abs/path", "a/b\\c"]
)
def test_bad_uris_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        DataUri.parse(text)
