"""Publish and build smoke tests start the model's worker as serving does, against a real server.

The worker of a smoke test (a publish's, and a git build's: Algorithmia's ``compile``) gets the
model's secrets as environment variables and a channel to the gateway, through which the
Algorithmia client the model creates when it loads reads hosted data; the call tree's scratch
space (``data://.session``) its example call opens is removed when the smoke test ends. No
secret value reaches a build log or the server's log.
"""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import Algorithmia
import pytest

from algora.errors import BuildFailed
from algora.testing import RunningServer, write_model

from ..conftest import database_url
from ..helpers import ADK_REQUIREMENTS, ALGORITHM_SETTINGS, digest, git

VALUE = "smoke-s3cr3t-" + "q" * 24  # easy to spot anywhere it leaked
GREETING = "hello from hosted data"

SECRET_AT_LOAD = textwrap.dedent(
    """
    import hashlib
    import os


    class Model:
        def load(self) -> None:
            # Without the secret the model cannot load: os.environ raises KeyError.
            self.digest = hashlib.sha256(os.environ["MY_TOKEN"].encode()).hexdigest()

        def predict(self, input: str) -> str:
            return self.digest
    """
)

GIT_SECRET_AT_LOAD = textwrap.dedent(
    """
    import hashlib
    import os

    DIGEST = hashlib.sha256(os.environ["MY_TOKEN"].encode()).hexdigest()


    def apply(input):
        return DIGEST
    """
)

DATA_AT_LOAD = textwrap.dedent(
    """
    import Algorithmia

    client = Algorithmia.client()  # when the model loads, as ADK algorithms do
    GREETING = client.file("data://admin/smoke-data/greeting.txt").getString()


    def apply(input):
        client.file("data://.session/scratch.txt").put(str(input))
        return GREETING + " / " + client.file("data://.session/scratch.txt").getString()
    """
)


@dataclass
class World:
    server: RunningServer
    root: Path

    def client(self) -> Any:
        return Algorithmia.client(self.server.key, self.server.url)

    def remote(self, name: str) -> str:
        host = self.server.url.removeprefix("http://")
        return f"http://anyone:{self.server.key}@{host}/git/admin/{name}.git"

    def sessions(self) -> list[Path]:
        """What is left of call trees' scratch spaces."""
        folder = self.server.data_dir / "sessions"
        return sorted(folder.iterdir()) if folder.exists() else []

    def push(self, name: str, files: dict[str, str]) -> str:
        """Clone admin/NAME, write ``files`` over it, commit and push; the new head."""
        work = self.root / f"work-{name}"
        git("clone", "-q", self.remote(name), str(work), cwd=self.root)
        for relative, text in files.items():
            (work / relative).write_text(text, encoding="utf-8")
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", f"{name} for the smoke test", cwd=work)
        git("push", "-q", "origin", "master", cwd=work)
        return git("rev-parse", "HEAD", cwd=work).stdout.strip()

    def compiled(self, name: str) -> tuple[dict[str, Any], str]:
        """Compile admin/NAME's head: the answer, and the build's log."""
        algo = self.client().algo(f"admin/{name}")
        answer = algo.compile()
        logs = algo.get_build_logs(answer["build"]["build_id"])["logs"]
        return dict(answer), str(logs)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    root = tmp_path_factory.mktemp("smoke-access")
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(database_url(request.param))
        env = {"ALGORA_DATABASE_URL": url} if url else {}
        server = stack.enter_context(RunningServer(root / "data", env=env))
        admin = Algorithmia.client(server.key, server.url)
        admin.dir("data://.my/smoke-data").create()  # the default ACL: admin's models read it
        admin.file("data://.my/smoke-data/greeting.txt").put(GREETING)
        yield World(server, root)
        log = server.log_path.read_text(encoding="utf-8", errors="replace")
        assert VALUE not in log, "a secret value reached the server log"


@pytest.mark.slow
def test_a_publish_gives_load_the_models_secrets(world: World) -> None:
    folder = write_model(
        world.root / "secret-load",
        "secret-load",
        SECRET_AT_LOAD,
        entrypoint="model:Model",
        example='text = "ping"',
    )
    with world.server.client() as admin:
        # A first publish: the model has no secrets yet, so its load fails.
        with pytest.raises(BuildFailed, match="MY_TOKEN"):
            admin.publish(folder)
        algo = world.client().algo("admin/secret-load")
        algo.set_secret("Token", "MY_TOKEN", VALUE, "read when the model loads")
        lines: list[str] = []
        published = admin.publish(folder, on_log=lines.append)
    assert published["status"] == "ready"
    log = "\n".join(lines)
    assert f"example answered (text): {digest(VALUE)}" in log
    assert VALUE not in log
    assert algo.pipe("x").result == digest(VALUE)


@pytest.mark.slow
def test_a_publish_smoke_test_reads_hosted_data_and_leaves_no_session(world: World) -> None:
    folder = write_model(
        world.root / "data-load",
        "data-load",
        DATA_AT_LOAD,
        requirements=ADK_REQUIREMENTS,
        example='text = "smoke"',
    )
    lines: list[str] = []
    with world.server.client() as admin:
        published = admin.publish(folder, on_log=lines.append)
    assert published["status"] == "ready", lines
    # The example call wrote into its session, which is gone now that the smoke test is over.
    assert f"example answered (text): {GREETING} / smoke" in "\n".join(lines)
    assert world.sessions() == []
    assert world.client().algo("admin/data-load").pipe("call").result == f"{GREETING} / call"
    assert world.sessions() == []


@pytest.mark.slow
def test_a_build_gives_load_the_models_secrets(world: World) -> None:
    algo = world.client().algo("admin/gitsecret")
    algo.create({"label": "gitsecret", "summary": "reads a secret at load"}, ALGORITHM_SETTINGS)
    algo.set_secret("Token", "MY_TOKEN", VALUE, "read when the model loads")
    head = world.push("gitsecret", {"src/gitsecret.py": GIT_SECRET_AT_LOAD})
    compiled, logs = world.compiled("gitsecret")
    assert compiled["build"]["commit_sha"] == head
    assert compiled["compilation"]["successful"] is True, logs
    assert compiled["build"]["status"] == "succeeded"
    assert VALUE not in logs
    version = algo.publish(version_info={"version_type": "minor"})["version_info"]
    call = world.client().algo(f"admin/gitsecret/{version['semantic_version']}").pipe("x")
    assert call.result == digest(VALUE)


@pytest.mark.slow
def test_a_build_reads_hosted_data_at_load_and_leaves_no_session(world: World) -> None:
    algo = world.client().algo("admin/gitdata")
    algo.create({"label": "gitdata", "summary": "reads hosted data at load"}, ALGORITHM_SETTINGS)
    head = world.push(
        "gitdata", {"src/gitdata.py": DATA_AT_LOAD, "requirements.txt": ADK_REQUIREMENTS}
    )
    compiled, logs = world.compiled("gitdata")
    assert compiled["build"]["commit_sha"] == head
    assert compiled["compilation"]["successful"] is True, logs
    assert "example answered" in logs and f"{GREETING} / " in logs
    assert world.sessions() == []
    algo.publish(version_info={"version_type": "minor"})
    assert algo.pipe("call").result == f"{GREETING} / call"
