"""Algorithmia's git workflow against a real server: its own client and git itself.

``create`` seeds a repository, ``compile`` builds it, ``publish`` makes the build a version;
``git clone``/``push`` over smart HTTP with the API key, a push builds, a broken push fails
with a readable log. Every build reuses one environment (the template has no dependencies),
so each takes about a second.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import Algorithmia
import httpx
import pytest
from Algorithmia import errors

from algora.errors import BadRequest
from algora.modelfolder.layouts import find_manifest
from algora.registry.sources import python3_template, runtime_of
from algora.testing import RunningServer, write_model

from ...conftest import database_url
from ...helpers import ALGORITHM_SETTINGS, finished_build, git, new_users

HOWDY = 'def apply(input):\n    return "howdy {}".format(input)\n'
BROKEN = 'def apply(input):\n    raise RuntimeError("the template was broken on purpose")\n'


@dataclass
class Setup:
    server: RunningServer
    root: Path
    guest_key: str
    """A user with a ``call`` grant on admin/greeter and admin/pushy: may call, not read code."""
    stranger_key: str
    """A user with no right at all on admin's models."""
    reader_key: str
    """An admin key with only the ``models:read`` scope: may clone, may not push."""

    def client(self, key: str | None = None) -> Any:
        return Algorithmia.client(key or self.server.key, self.server.url)

    def remote(self, name: str, key: str | None = None, user: str = "anyone") -> str:
        secret = key if key is not None else self.server.key
        host = self.server.url.removeprefix("http://")
        return f"http://{user}:{secret}@{host}/git/admin/{name}.git"


def commit_and_push(work: Path, path: str, text: str, message: str) -> str:
    (work / path).write_text(text, encoding="utf-8")
    git("commit", "-q", "-am", message, cwd=work)
    git("push", "-q", "origin", "master", cwd=work)
    return git("rev-parse", "HEAD", cwd=work).stdout.strip()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def setup(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("algorithmia-git")
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(database_url(request.param))
        env = {"ALGORA_DATABASE_URL": url} if url else {}
        server = stack.enter_context(RunningServer(root / "data", env=env))
        admin = stack.enter_context(server.client())
        for name in ("greeter", "pushy"):
            Algorithmia.client(server.key, server.url).algo(f"admin/{name}").create(
                {"label": name, "summary": f"the {name} algorithm"}, ALGORITHM_SETTINGS
            )
        admin.publish(write_model(root / "folder", "folder", "def apply(x):\n    return x\n"))
        keys = new_users(admin, "guest", "stranger")
        for model in ("greeter", "pushy"):
            granted = admin.request(
                "PUT", f"/api/v1/models/admin/{model}/grants/guest", json={"right": "call"}
            )
            assert granted.status_code == 200, granted.text
        reader = admin.request("POST", "/api/v1/keys", json={"scopes": ["models:read"]})
        assert reader.status_code == 201, reader.text
        yield Setup(server, root, keys["guest"], keys["stranger"], reader.json()["key"])


@pytest.mark.slow
def test_create_compile_publish_and_call_with_the_client(setup: Setup) -> None:
    client = setup.client()
    algo = client.algo("admin/greeter")
    assert algo.exists()
    scm = algo.get_scm_status()
    assert scm == {"scm_connection_status": "active"}

    compiled = algo.compile()
    assert compiled["compilation"] == {"successful": True, "output": ""}
    build = compiled["build"]
    assert build["status"] == "succeeded"
    assert build["resource_type"] == "algorithm_build"
    assert len(build["commit_sha"]) == 40
    assert compiled["version_info"]["semantic_version"] is None  # built, not yet published
    assert algo.compile()["build"]["build_id"] == build["build_id"]  # a retry reuses the build

    listed = algo.get_builds()
    assert [b["build_id"] for b in listed["results"]] == [build["build_id"]]
    assert listed["marker"] is None and listed["next_link"] is None
    one = algo.get_build(build["build_id"])
    assert one["status"] == "succeeded" and one["commit_sha"] == build["commit_sha"]
    logs = algo.get_build_logs(build["build_id"])["logs"]
    assert f"commit {build['commit_sha']}" in logs
    assert "example answered (text): hello world" in logs
    assert logs.rstrip().endswith("==> succeeded")

    published = algo.publish(
        version_info={
            "version_type": "minor",
            "release_notes": "the first greeter",
            "sample_input": "world",
        }
    )
    info = published["version_info"]
    assert info["semantic_version"] == "1.0.0"
    assert info["release_notes"] == "the first greeter"
    assert info["sample_input"] == "world"
    assert published["build"]["build_id"] == build["build_id"]
    assert published["build"]["commit_sha"] == build["commit_sha"]
    assert info["git_hash"] == compiled["version_info"]["git_hash"]

    assert client.algo("admin/greeter/1.0.0").pipe("you").result == "hello you"
    assert client.algo(f"admin/greeter/{info['git_hash']}").pipe("hash").result == "hello hash"
    guest = setup.client(setup.guest_key)
    assert guest.algo("admin/greeter").pipe("guest").result == "hello guest"

    # The client retries a publish once; publishing the same build again is that version.
    again = algo.publish(version_info={"version_type": "major"})
    assert again["version_info"]["semantic_version"] == "1.0.0"
    assert [v["version_info"]["semantic_version"] for v in algo.versions()["results"]] == ["1.0.0"]
    by_hash = algo.info(info["git_hash"])
    assert by_hash["build"]["commit_sha"] == build["commit_sha"]
    assert algo.get_build(build["build_id"])["version_info"] == {"semantic_version": "1.0.0"}

    with setup.server.client() as admin:
        lineage = admin.get_json("/api/v1/models/admin/greeter/versions/1.0.0/lineage")
    assert lineage["git"]["commit"] == build["commit_sha"]
    assert lineage["build_id"] == build["build_id"]
    assert "sbom" in lineage


@pytest.mark.slow
def test_create_refuses_what_it_cannot_make(setup: Setup) -> None:
    client = setup.client()
    with pytest.raises(Exception, match="409"):
        client.algo("admin/greeter").create({"label": "again"}, ALGORITHM_SETTINGS)
    with pytest.raises(Exception, match="400"):
        client.algo("admin/javaish").create({}, {**ALGORITHM_SETTINGS, "language": "java"})
    with pytest.raises(Exception, match="400"):
        client.algo("admin/no.dots").create({}, ALGORITHM_SETTINGS)  # Upper would be admin/upper
    with pytest.raises(Exception, match=r"40[34]"):
        setup.client(setup.stranger_key).algo("admin/mine").create({}, ALGORITHM_SETTINGS)
    assert not client.algo("admin/javaish").exists()
    # A model published from a folder has no repository to build.
    folder = client.algo("admin/folder")
    with pytest.raises(Exception, match="404"):
        folder.compile()
    with pytest.raises(errors.AlgorithmException, match="has no source repository"):
        folder.get_scm_status()


@pytest.mark.slow
def test_clone_edit_push_builds_and_publish(setup: Setup) -> None:
    work = setup.root / "pushy"
    git("clone", "-q", setup.remote("pushy"), str(work), cwd=setup.root)
    files = sorted(
        str(p.relative_to(work)) for p in work.rglob("*") if p.is_file() and ".git" not in p.parts
    )
    assert files == [  # Algorithmia's layout, and nothing of Algora's
        "README.md",
        "algorithmia.conf",
        "requirements.txt",
        "src/__init__.py",
        "src/pushy.py",
        "src/pushy_test.py",
    ]
    assert "def apply(input)" in (work / "src" / "pushy.py").read_text()

    commit = commit_and_push(work, "src/pushy.py", HOWDY, "say howdy")
    algo = setup.client().algo("admin/pushy")
    build = finished_build(algo, commit)
    assert build["status"] == "succeeded", algo.get_build_logs(build["build_id"])["logs"]
    assert "(push)" in algo.get_build_logs(build["build_id"])["logs"]

    published = algo.publish(version_info={"version_type": "minor"})
    assert published["build"]["commit_sha"] == commit
    version = published["version_info"]["semantic_version"]
    assert setup.client().algo(f"admin/pushy/{version}").pipe("you").result == "howdy you"

    # The same commit is not built twice: compile answers the push's build.
    assert algo.compile()["build"]["build_id"] == build["build_id"]
    with setup.server.client() as admin:
        rows = admin.get_json("/api/v1/audit", model="admin/pushy", limit=1000)
    pushes = [r for r in rows if r["action"] == "source.push" and r["status"] == 200]
    assert pushes and pushes[-1]["principal"] == "admin"
    assert pushes[-1]["auth_method"] == "basic"


@pytest.mark.slow
def test_broken_code_fails_the_build_with_a_readable_log(setup: Setup) -> None:
    work = setup.root / "broken"
    git("clone", "-q", setup.remote("pushy"), str(work), cwd=setup.root)
    commit = commit_and_push(work, "src/pushy.py", BROKEN, "break it")
    algo = setup.client().algo("admin/pushy")
    build = finished_build(algo, commit)
    assert build["status"] == "failed"
    logs = algo.get_build_logs(build["build_id"])["logs"]
    assert "the template was broken on purpose" in logs
    assert "RuntimeError" in logs
    assert "==> failed" in logs
    compiled = algo.compile()
    assert compiled["compilation"]["successful"] is False  # a new build, failing again
    assert "the template was broken on purpose" in compiled["compilation"]["output"]
    before = algo.versions()["results"]
    with pytest.raises(Exception, match="422"):
        algo.publish(version_info={"version_type": "revision"})
    assert algo.versions()["results"] == before
    # Fixed again: the build succeeds and the fix publishes as a revision.
    fixed = commit_and_push(work, "src/pushy.py", HOWDY.replace("howdy", "fixed"), "fix it")
    assert finished_build(algo, fixed)["status"] == "succeeded"
    revision = algo.publish(version_info={"version_type": "revision"})["version_info"]
    assert revision["semantic_version"].endswith(".1")
    call = setup.client().algo(f"admin/pushy/{revision['semantic_version']}").pipe("x")
    assert call.result == "fixed x"


@pytest.mark.slow
def test_git_refuses_those_without_the_rights(setup: Setup, tmp_path: Path) -> None:
    # A stranger does not learn that the repository exists.
    stranger = git(
        "clone", setup.remote("pushy", setup.stranger_key), str(tmp_path / "s"), check=False
    )
    assert stranger.returncode != 0 and "not found" in stranger.stderr
    # Calling a model is not reading its source.
    guest = git("clone", setup.remote("pushy", setup.guest_key), str(tmp_path / "g"), check=False)
    assert guest.returncode != 0
    assert "may not publish 'admin/pushy'" in guest.stderr
    # A wrong key, and no key at all: git is challenged and cannot answer.
    wrong = git("clone", setup.remote("pushy", "simNotAKey"), str(tmp_path / "w"), check=False)
    assert wrong.returncode != 0 and "Authentication failed" in wrong.stderr
    anonymous = setup.server.url + "/git/admin/pushy.git"
    nobody = git("clone", anonymous, str(tmp_path / "n"), check=False)
    assert nobody.returncode != 0

    # Nor does it show the build logs (what the build ran, the model's tracebacks), nor build.
    guest_algo = setup.client(setup.guest_key).algo("admin/pushy")
    listed = guest_algo.get_builds()["results"]
    assert listed
    with pytest.raises(errors.AlgorithmException, match="may not publish"):
        guest_algo.get_build_logs(listed[0]["build_id"])
    with pytest.raises(Exception, match="403"):
        guest_algo.compile()
    with pytest.raises(Exception, match="403"):
        guest_algo.publish(version_info={"version_type": "major"})

    # A key that may read models may clone, but not push.
    reader = tmp_path / "reader"
    git("clone", "-q", setup.remote("pushy", setup.reader_key), str(reader))
    (reader / "src" / "pushy.py").write_text(HOWDY.replace("howdy", "sneaky"))
    git("commit", "-q", "-am", "sneak", cwd=reader)
    pushed = git("push", "origin", "master", cwd=reader, check=False)
    assert pushed.returncode != 0
    assert "lacks the 'models:publish' scope" in pushed.stderr
    head = git("ls-remote", setup.remote("pushy"), "refs/heads/master", cwd=reader).stdout
    assert git("rev-parse", "HEAD", cwd=reader).stdout.strip() not in head


@pytest.mark.slow
def test_builds_are_paged_newest_first(setup: Setup) -> None:
    algo = setup.client().algo("admin/pushy")
    everything = algo.get_builds()
    assert everything["marker"] is None
    ids = [b["build_id"] for b in everything["results"]]
    assert len(ids) >= 3  # the pushes and compiles of the tests before
    started = [b["started_at"] for b in everything["results"]]
    assert started == sorted(started, reverse=True)
    seen: list[str] = []
    page = algo.get_builds(limit=2)
    while True:
        seen += [b["build_id"] for b in page["results"]]
        if page["marker"] is None:
            assert page["next_link"] is None
            break
        assert "marker=" in page["next_link"]
        page = algo.get_builds(limit=2, marker=page["marker"])
    assert seen == ids
    with pytest.raises(errors.AlgorithmException, match="not a build"):
        algo.get_builds(marker="no-such-build")


@pytest.mark.slow
def test_smart_http_only_inside_the_repository_root(setup: Setup) -> None:
    url = setup.server.url
    headers = {"Authorization": f"Simple {setup.server.key}"}
    challenge = httpx.get(url + "/git/admin/pushy.git/info/refs?service=git-upload-pack")
    assert challenge.status_code == 401
    assert challenge.headers["www-authenticate"].startswith("Basic ")
    refs = httpx.get(
        url + "/git/admin/pushy.git/info/refs",
        params={"service": "git-upload-pack"},
        headers=headers,
    )
    assert refs.status_code == 200
    assert refs.headers["content-type"] == "application/x-git-upload-pack-advertisement"
    dumb = httpx.get(url + "/git/admin/pushy.git/info/refs", headers=headers)
    assert dumb.status_code == 400 and "smart HTTP" in dumb.text
    for path in (
        "/git/admin/pushy.git/HEAD",
        "/git/admin/pushy.git/config",
        "/git/admin/pushy.git/objects/info/packs",
        "/git/admin/..%2F..%2Fregistry.db.git/info/refs?service=git-upload-pack",
        "/git/admin/%2E%2E.git/info/refs?service=git-upload-pack",
        "/git/..%2Fadmin/pushy.git/info/refs?service=git-upload-pack",
        "/git/admin/.home.git/info/refs?service=git-upload-pack",
    ):
        answer = httpx.get(url + path, headers=headers)
        assert answer.status_code == 404, (path, answer.status_code, answer.text)
    unknown = httpx.get(
        url + "/git/admin/pushy.git/info/refs", params={"service": "git-foo"}, headers=headers
    )
    assert unknown.status_code == 400


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("hello", "hello"),
        ("my-model", "my_model"),
        ("3d", "algorithm_3d"),
        ("class", "algorithm_class"),
    ],
)
def test_the_template_is_a_valid_model_for_any_name(name: str, module: str, tmp_path: Path) -> None:
    template = python3_template(name, summary='says "hi"\nand more', network=True, owner="me")
    assert "algora.toml" not in template.files  # Algorithmia's own files only
    for relative, text in template.files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text, encoding="utf-8")
    found = find_manifest(tmp_path)
    assert found.origin == "algorithmia.conf"
    manifest = found.manifest
    assert manifest.model.name == name
    assert manifest.model.entrypoint == f"src.{module}:apply"
    assert manifest.serving.network is True
    assert manifest.example.as_call() == ("text", b"world")
    assert 'says "hi"' in template.files["README.md"]
    assert f"src/{module}.py" in template.files and "src/__init__.py" in template.files


def test_only_python_3_runtimes_are_created() -> None:
    for settings in ({}, {"language": "python3"}, {"language": "python3-1"}, {"language": None}):
        assert runtime_of(settings) == "python3"
    for language in ("java", "python2-langpack", "r", 3):
        with pytest.raises(BadRequest, match="Python 3"):
            runtime_of({"language": language})


@pytest.mark.slow
def test_a_gzip_push_cannot_store_more_than_the_size_limit(tmp_path: Path) -> None:
    """The body limit counts the bytes that arrive; git inflates a gzip body before
    receive-pack reads it, so a small compressed push must not store a larger pack."""
    limit = 1_000_000
    env = {"ALGORA_MAX_ARCHIVE_BYTES": str(limit)}
    with RunningServer(tmp_path / "data", env=env) as server:
        Algorithmia.client(server.key, server.url).algo("admin/bomb").create(
            {"label": "bomb", "summary": "a small push that inflates"}, ALGORITHM_SETTINGS
        )
        host = server.url.removeprefix("http://")
        remote = f"http://anyone:{server.key}@{host}/git/admin/bomb.git"
        work = tmp_path / "work"
        git("clone", "-q", remote, str(work), cwd=tmp_path)
        before = git("rev-parse", "HEAD", cwd=work).stdout.strip()
        # More than git's unpack limit (100 objects): the pack is kept as it arrives.
        for index in range(120):
            (work / f"zeros-{index}").write_bytes(index.to_bytes(4, "big") + bytes(40_000))
        git("add", ".", cwd=work)
        git("commit", "-q", "-m", "zeros", cwd=work)
        after = git("rev-parse", "HEAD", cwd=work).stdout.strip()
        pack = git_bytes(
            "-c", "pack.compression=0", "pack-objects", "--window=0", "--stdout", "--revs",
            cwd=work, stdin=f"{after}\n^{before}\n".encode(),
        )  # fmt: skip
        assert len(pack) > 4 * limit
        command = f"{before} {after} refs/heads/master\0report-status\n".encode()
        body = gzip.compress(b"%04x" % (len(command) + 4) + command + b"0000" + pack)
        assert len(body) < limit // 10
        answer = httpx.post(
            server.url + "/git/admin/bomb.git/git-receive-pack",
            content=body,
            headers={
                "Authorization": f"Simple {server.key}",
                "Content-Type": "application/x-git-receive-pack-request",
                "Content-Encoding": "gzip",
            },
            timeout=60,
        )
        assert b"ok refs/heads/master" not in answer.content, answer.content
        head = git("ls-remote", remote, "refs/heads/master", cwd=tmp_path).stdout
        assert head.split()[0] == before
        stored = sum(
            p.stat().st_size for p in (tmp_path / "data" / "git").rglob("*") if p.is_file()
        )
        assert stored < limit


def git_bytes(*args: str, cwd: Path, stdin: bytes) -> bytes:
    """git's binary stdout (a pack), with no configuration from this machine."""
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1"}
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, input=stdin, capture_output=True, check=True, timeout=120
    )
    return done.stdout


@pytest.mark.slow
def test_a_stalled_push_ends_at_the_git_request_timeout(tmp_path: Path) -> None:
    """A client that stops sending cannot hold a git backend process for ever."""
    env = {"ALGORA_GIT_REQUEST_TIMEOUT": "1"}
    with RunningServer(tmp_path / "data", env=env) as server:
        Algorithmia.client(server.key, server.url).algo("admin/stalled").create(
            {"label": "stalled", "summary": "a push that never finishes"}, ALGORITHM_SETTINGS
        )
        credentials = base64.b64encode(f"anyone:{server.key}".encode()).decode()
        head = (
            "POST /git/admin/stalled.git/git-receive-pack HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\n"
            f"Authorization: Basic {credentials}\r\n"
            "Content-Type: application/x-git-receive-pack-request\r\n"
            "Content-Length: 100000\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(head.encode() + b"0000")  # then nothing more
            started = time.monotonic()
            received = b""
            while b"\r\n\r\n" not in received and (chunk := sock.recv(4096)):
                received += chunk
            head_part, _, body_part = received.partition(b"\r\n\r\n")
            declared = re.search(rb"content-length: *(\d+)", head_part, re.IGNORECASE)
            assert declared is not None, head_part
            length = int(declared[1])
            while len(body_part) < length and (chunk := sock.recv(4096)):
                body_part += chunk
            answer = (head_part + b"\r\n\r\n" + body_part).decode("latin-1")
        assert answer.startswith("HTTP/1.1 408"), answer
        assert "ALGORA_GIT_REQUEST_TIMEOUT" in answer
        assert time.monotonic() - started < 25
        # git runs git-http-backend as its child: stopping git must not orphan it.
        deadline = time.monotonic() + 10
        while (left := backends_under(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, f"git backends left running: {left}"


def backends_under(root: Path) -> list[int]:
    """PIDs of processes whose GIT_PROJECT_ROOT lies under ``root``."""
    marker = f"GIT_PROJECT_ROOT={root}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(item.startswith(marker) for item in environ.split(b"\0")):
            found.append(int(entry.name))
    return found
