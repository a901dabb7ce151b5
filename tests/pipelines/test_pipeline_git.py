"""A pipeline pushed with git, built like any source, and called with Algorithmia's own client.

``algora serve`` runs as its own process; git itself pushes ``pipeline.toml`` into a model's
repository (created with Algorithmia's ``create`` call). A commit whose step names a model
that does not exist fails its build with the step named; a good one builds, publishes and
answers through the ``algorithmia`` client.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import Algorithmia
import pytest

from algora.testing import RunningServer, write_model

from ..helpers import finished_build, git

pytestmark = pytest.mark.slow

PIPELINE = """\
[pipeline]
name = "twice"

[[steps]]
name = "first"
model = "{model}"

[[steps]]
name = "second"
model = "double"
input = "$.steps.first.output"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("pipeline-git")
    with RunningServer(root / "data") as running, running.client() as admin:
        code = "def apply(input: int) -> int:\n    return input * 2\n"
        admin.publish(write_model(root / "double", "double", code))
        yield running


def push(work: Path, text: str, message: str) -> str:
    """Commit ``pipeline.toml`` as the repository's only file and push it; the commit's id."""
    for path in work.iterdir():
        if path.name != ".git":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    (work / "pipeline.toml").write_text(text, encoding="utf-8")
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", message, cwd=work)
    git("push", "-q", "origin", "master", cwd=work)
    return git("rev-parse", "HEAD", cwd=work).stdout.strip()


def test_a_pushed_pipeline_is_checked_built_and_called(
    server: RunningServer, tmp_path: Path
) -> None:
    client = Algorithmia.client(server.key, server.url)
    algo = client.algo("admin/twice")
    algo.create({"label": "twice"}, {"language": "python3", "network_access": "isolated"})
    remote = f"http://me:{server.key}@{server.url.removeprefix('http://')}/git/admin/twice.git"
    work = tmp_path / "twice"
    git("clone", "-q", remote, str(work), cwd=tmp_path)

    wrong = finished_build(algo, push(work, PIPELINE.format(model="nobody"), "a wrong step"))
    logs = algo.get_build_logs(wrong["build_id"])["logs"]
    assert wrong["status"] == "failed", logs
    assert "step 'first' calls 'admin/nobody'" in logs

    good = finished_build(algo, push(work, PIPELINE.format(model="double"), "two steps"))
    logs = algo.get_build_logs(good["build_id"])["logs"]
    assert good["status"] == "succeeded", logs
    assert "archive and pipeline.toml are valid" in logs
    published = algo.publish(version_info={"version_type": "minor"})
    version = published["version_info"]["semantic_version"]
    assert client.algo(f"admin/twice/{version}").pipe(3).result == 12
