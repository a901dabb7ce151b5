"""A JavaScript model (``examples/node-hello``) published to a real server and called over
the native SDK and Algorithmia's API; a Node model calling a Python model through its
gateway socket; a Node model's npm dependencies in its environment, checked by the dependency
policy and listed in its SBOM."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from algora.errors import BuildFailed, InvalidManifest
from algora.testing import RunningServer

from ..helpers import REPO

EXAMPLE = REPO / "examples" / "node-hello"

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def test_node_hello_over_the_sdk_and_algorithmia(tmp_path: Path) -> None:
    with RunningServer(tmp_path / "data") as server, server.client() as admin:
        version = admin.publish(EXAMPLE)
        assert version["status"] == "ready", version
        model = admin.model("admin/node-hello")
        answer = model.call_full("world")
        assert answer.result == "Hello world"
        assert answer.content_type == "text"
        assert model.call({"name": "Ada"})["greeting"] == "Hello Ada"
        headers = {"Authorization": f"Simple {server.key}"}
        url = f"{server.url}/v1/algo/admin/node-hello"
        reply = httpx.post(url, json={"name": "Ada"}, headers=headers, timeout=30)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["result"]["greeting"] == "Hello Ada"
        assert body["result"]["runtime"].startswith("node v")
        assert body["metadata"]["content_type"] == "json"
        reply = httpx.post(url, json=5, headers=headers, timeout=30)
        error = reply.json()["error"]
        assert error["error_type"] == "InputError"
        assert "model.js" in error["stacktrace"]
        broken = tmp_path / "broken"
        shutil.copytree(EXAMPLE, broken)
        (broken / "package.json").write_text("{not json")
        with pytest.raises(InvalidManifest, match=r"package\.json is not valid"):
            admin.publish(broken)  # refused at once, not in the build


CALLS_HELLO = """
exports.apply = async (input) => {
  const response = await fetch(`${process.env.ALGORA_URL}/v1/algo/admin/hello`, {
    method: 'POST',
    headers: {
      Authorization: `Simple ${process.env.ALGORA_KEY}`,
      'Content-Type': 'text/plain',
    },
    body: String(input),
  });
  const body = await response.json();
  return { status: response.status, child: body.result, error: body.error };
};
"""


def test_a_node_model_calls_a_python_model_through_its_gateway_socket(tmp_path: Path) -> None:
    folder = tmp_path / "node-caller"
    folder.mkdir()
    (folder / "algora.toml").write_text(
        '[model]\nname = "node-caller"\nruntime = "node"\nentrypoint = "model.js:apply"\n'
        '\n[example]\ntext = "from node"\n',
        encoding="utf-8",
    )
    (folder / "model.js").write_text(CALLS_HELLO, encoding="utf-8")
    with RunningServer(tmp_path / "data") as server, server.client() as admin:
        admin.publish(REPO / "examples" / "hello")
        version = admin.publish(folder)
        assert version["status"] == "ready", version
        headers = {"Authorization": f"Simple {server.key}", "X-Request-Id": "node-parent-1"}
        reply = httpx.post(
            f"{server.url}/v1/algo/admin/node-caller",
            content="Ada",
            headers={**headers, "Content-Type": "text/plain"},
            timeout=60,
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["result"] == {"status": 200, "child": "Hello Ada"}
        rows = httpx.get(
            f"{server.url}/api/v1/audit", params={"model": "admin/hello"}, headers=headers
        ).json()
        child = [r for r in rows if r.get("parent_request_id") == "node-parent-1"]
        assert len(child) == 1 and child[0]["status"] == 200  # audited under its parent


def _npm_registry_reachable() -> bool:
    npm = shutil.which("npm")
    if npm is None:
        return False
    try:
        done = subprocess.run(
            [npm, "view", "is-number@7.0.0", "version"], capture_output=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


MODEL_WITH_DEPENDENCY = """
const isNumber = require('is-number');
exports.apply = (input) => ({ number: isNumber(input), from: require.resolve('is-number') });
"""


def _dependent_model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "algora.toml").write_text(
        '[model]\nname = "node-dep"\nruntime = "node"\nentrypoint = "model.js:apply"\n'
        "\n[example]\ninput = 5\n",
        encoding="utf-8",
    )
    (folder / "model.js").write_text(MODEL_WITH_DEPENDENCY, encoding="utf-8")
    (folder / "package.json").write_text(
        '{"name": "node-dep", "private": true, "dependencies": {"is-number": "7.0.0"}}',
        encoding="utf-8",
    )
    return folder


def test_npm_dependencies_are_installed_into_the_environment(tmp_path: Path) -> None:
    if not _npm_registry_reachable():
        pytest.skip("the npm registry is unreachable")
    folder = _dependent_model(tmp_path)
    with RunningServer(tmp_path / "data") as server, server.client() as admin:
        version = admin.publish(folder)
        assert version["status"] == "ready", version
        result = admin.model("admin/node-dep").call("12")
        assert result["number"] is True
        assert "/envs/" in result["from"]  # the version's environment, not the source folder
        assert not (folder / "node_modules").exists()
        again = admin.publish(folder)  # same package.json: the environment is reused
        assert again["environment_hash"] == version["environment_hash"]
        log = admin.build_log("admin/node-dep", again["version"])
        assert "reused environment" in str(log)
        # The lock npm resolved was checked, listed in the SBOM, and installed.
        assert "npm package(s): policy passed" in str(log)
        sbom = admin.get_json(f"/api/v1/models/admin/node-dep/versions/{version['version']}/sbom")
        purls = {c["purl"] for c in sbom["components"]}
        assert "pkg:npm/is-number@7.0.0" in purls


def test_the_policy_refuses_a_denied_npm_package(tmp_path: Path) -> None:
    if not _npm_registry_reachable():
        pytest.skip("the npm registry is unreachable")
    policy = tmp_path / "policy.toml"
    policy.write_text('[npm]\ndeny = ["is-number@<8"]\n', encoding="utf-8")
    folder = _dependent_model(tmp_path)
    env = {"ALGORA_POLICY_FILE": str(policy)}
    with RunningServer(tmp_path / "data", env=env) as server, server.client() as admin:
        with pytest.raises(BuildFailed, match=r"npm package is-number 7\.0\.0 is denied by rule"):
            admin.publish(folder)
        assert not list((tmp_path / "data" / "envs").glob("*/node_modules"))  # nothing installed
