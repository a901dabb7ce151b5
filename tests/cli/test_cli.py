"""The CLI as a subprocess against a real server process on a free port."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx

from algora.testing import RunningServer

from ..helpers import algora


def test_first_start_writes_an_owner_only_admin_key(server: RunningServer) -> None:
    key_file = server.data_dir / "admin.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert server.key.startswith("sim")
    log = server.log()
    assert server.key in log and "curl" in log and server.url in log
    assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700


def test_start_up_prints_no_migration_chatter(server: RunningServer) -> None:
    log = server.log()
    assert "alembic" not in log and "Running upgrade" not in log


def test_init_publish_call_round_trip(server: RunningServer, tmp_path: Path) -> None:
    env = {"ALGORA_URL": server.url, "ALGORA_KEY": server.key}
    created = algora("init", "greeting", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    folder = tmp_path / "greeting"
    assert {p.name for p in folder.iterdir()} >= {
        "algora.toml",
        "model.py",
        "test_model.py",
        "requirements.txt",
    }
    scaffold_test = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_model.py"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert scaffold_test.returncode == 0, scaffold_test.stdout

    published = algora("publish", str(folder), env=env)
    assert published.returncode == 0, published.stdout + published.stderr
    assert "published admin/greeting/1.0.0" in published.stdout
    assert "step 7/7" in published.stdout

    called = algora("call", "admin/greeting/1.x", '{"text": "cli", "times": 2}', env=env)
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout) == {"greeting": "Hello cli Hello cli"}

    full = algora("call", "admin/greeting", '{"text": "x", "times": 1}', "--full", env=env)
    assert json.loads(full.stdout)["metadata"]["content_type"] == "json"

    models = algora("models", "--json", env=env)
    assert "admin/greeting" in {m["full_name"] for m in json.loads(models.stdout)}
    versions = algora("versions", "admin/greeting", "--json", env=env)
    assert [v["version"] for v in json.loads(versions.stdout)] == ["1.0.0"]
    lock = algora("versions", "admin/greeting", "1.0.0", "--show", "schema", env=env)
    assert json.loads(lock.stdout)["input"]["type"] == "object"
    log = algora("versions", "admin/greeting", "1.0.0", "--show", "log", env=env)
    assert "==> ready" in log.stdout

    bumped = algora("publish", str(folder), "--bump", "major", "-q", env=env)
    assert "admin/greeting/2.0.0" in bumped.stdout


def test_lineage_records_the_git_commit(server: RunningServer, tmp_path: Path) -> None:
    env = {"ALGORA_URL": server.url, "ALGORA_KEY": server.key}
    assert algora("init", "tracked", cwd=tmp_path).returncode == 0
    folder = tmp_path / "tracked"
    git = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    for command in (["init", "-q"], ["add", "."], ["commit", "-qm", "first"]):
        subprocess.run(["git", *command], cwd=folder, check=True, env={**os.environ, **git})
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True
    ).stdout.strip()
    (folder / "README.md").write_text("changed\n")
    assert algora("publish", str(folder), "-q", env=env).returncode == 0
    lineage = httpx.get(
        f"{server.url}/api/v1/models/admin/tracked/versions/1.0.0/lineage",
        headers={"Authorization": f"Simple {server.key}"},
    ).json()
    assert lineage["git"]["commit"] == commit
    assert lineage["git"]["dirty"] is True


def test_login_saves_a_private_profile(server: RunningServer, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    env = {"ALGORA_CONFIG_FILE": str(config), "ALGORA_URL": "", "ALGORA_KEY": ""}
    done = algora("login", "--url", server.url, "--key", server.key, env=env)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    me = algora("whoami", env=env)
    assert me.returncode == 0 and "admin" in me.stdout


def test_errors_are_one_clear_line(server: RunningServer, tmp_path: Path) -> None:
    env = {"ALGORA_URL": server.url, "ALGORA_KEY": server.key}
    missing = algora("call", "admin/does-not-exist", "1", env=env)
    assert missing.returncode == 1
    assert "model_not_found" in missing.stderr and "Traceback" not in missing.stderr
    bad_key = algora("models", env={"ALGORA_URL": server.url, "ALGORA_KEY": "simWRONG"})
    assert bad_key.returncode == 1 and "unauthenticated" in bad_key.stderr
    no_server = algora("models", env={"ALGORA_URL": "http://127.0.0.1:9", "ALGORA_KEY": "x"})
    assert no_server.returncode == 1 and "cannot reach" in no_server.stderr
    no_manifest = algora("publish", str(tmp_path), env=env)
    assert no_manifest.returncode == 1 and "algora init" in no_manifest.stderr
    bad_name = algora("init", "Bad Name", cwd=tmp_path)
    assert bad_name.returncode == 2


def test_serve_restart_keeps_models_and_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with RunningServer(data) as first:
        key = first.key
        assert algora("init", "keeper", cwd=tmp_path).returncode == 0
        env = {"ALGORA_URL": first.url, "ALGORA_KEY": key}
        assert algora("publish", str(tmp_path / "keeper"), "-q", env=env).returncode == 0
    with RunningServer(data) as second:
        assert second.key == key
        assert "shown once" not in second.log().split("serving at")[-1]
        result = algora(
            "call",
            "admin/keeper",
            '{"text": "again", "times": 1}',
            env={"ALGORA_URL": second.url, "ALGORA_KEY": key},
        )
        assert json.loads(result.stdout) == {"greeting": "Hello again"}


def test_a_second_gateway_joins_a_registry_without_its_admin_key(tmp_path: Path) -> None:
    shared = {"ALGORA_DATABASE_URL": f"sqlite:///{tmp_path / 'registry.db'}"}
    # The second has its own data folder and the first one's registry: its admin exists, and
    # its key is in the first one's folder.
    with (
        RunningServer(tmp_path / "a", env=shared) as first,
        RunningServer(tmp_path / "b", env=shared, args=("--examples", "nowhere")) as other,
    ):
        assert not (other.data_dir / "admin.key").exists()
        said = other.log()
        assert "created by another gateway" in said and "not published" in said
        whoami = httpx.get(
            f"{other.url}/api/v1/whoami", headers={"Authorization": f"Simple {first.key}"}
        )
        assert whoami.status_code == 200 and whoami.json()["name"] == "admin"
