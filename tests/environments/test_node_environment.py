"""Node.js models: the manifest's runtime, their environments, and the spec of their workers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from algora.environments.node import MARKER, node_environment
from algora.errors import InvalidManifest
from algora.modelfolder.manifest import parse_manifest
from algora.registry.serving import worker_spec
from algora.settings import Settings

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

NODE_MANIFEST = '[model]\nname = "js"\nruntime = "node"\nentrypoint = "model.js:apply"\n'


def test_the_runtime_is_python_unless_the_manifest_says_node() -> None:
    assert parse_manifest('[model]\nname = "py"\n').model.runtime == "python"
    assert parse_manifest(NODE_MANIFEST).model.runtime == "node"
    with pytest.raises(InvalidManifest, match=r"model\.runtime"):
        parse_manifest('[model]\nname = "x"\nruntime = "ruby"\n')
    with pytest.raises(InvalidManifest, match="saved model is served by the Python runtime"):
        parse_manifest(NODE_MANIFEST + '\n[saved]\nfile = "model.onnx"\n')


def test_without_dependencies_no_npm_runs_and_the_environment_is_shared(tmp_path: Path) -> None:
    lines: list[str] = []
    source = tmp_path / "src"
    source.mkdir()
    env, described = node_environment(tmp_path / "envs", source, lines.append, timeout=60)
    assert not env.reused
    assert described.startswith("node v")
    assert (env.path / MARKER).is_file()
    assert env.python == env.path / "bin" / "node"
    assert env.python.resolve() == Path(shutil.which("node") or "").resolve()
    assert not (env.path / "node_modules").exists()
    assert any("nothing to install" in line for line in lines)
    (source / "package.json").write_text('{"name": "x", "dependencies": {}}')
    other, _ = node_environment(tmp_path / "envs", source, lines.append, timeout=60)
    assert other.hash != env.hash  # package.json is part of the hash
    again, _ = node_environment(tmp_path / "envs", source, lines.append, timeout=60)
    assert (again.hash, again.reused) == (other.hash, True)


def test_a_broken_package_json_is_the_publishers_error(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text("{nope")
    with pytest.raises(InvalidManifest, match=r"package\.json is not valid"):
        node_environment(tmp_path / "envs", tmp_path, print, timeout=60)


def test_the_worker_spec_of_a_node_model(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    env = tmp_path / "envs" / "abc"
    (env / "node_modules").mkdir(parents=True)
    spec = worker_spec(
        settings,
        parse_manifest(NODE_MANIFEST),
        python=env / "bin" / "python",  # what the gateway asks for any version's environment
        source_dir=tmp_path / "src",
        log_path=tmp_path / "log",
    )
    assert (spec.runtime, spec.python, spec.node_modules) == (
        "node", env / "bin" / "node", env / "node_modules",
    )  # fmt: skip
    assert spec.entrypoint == "model.js:apply"
    python = worker_spec(
        settings,
        parse_manifest('[model]\nname = "py"\n'),
        python=env / "bin" / "python",
        source_dir=tmp_path / "src",
        log_path=tmp_path / "log",
    )
    assert (python.runtime, python.python, python.node_modules) == (
        "python", env / "bin" / "python", None,
    )  # fmt: skip
