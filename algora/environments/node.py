"""Environments of Node.js models: the one module that runs npm.

A Node model's environment lives beside the Python ones, at ``root/<hash>``: ``bin/node`` (a
link to the server's ``node``) and, when the model's ``package.json`` declares dependencies,
``node_modules`` installed by npm. The hash covers Node's version, ``package.json`` and
``package-lock.json``, so versions with the same dependencies share one environment. It is
built in a temporary folder and renamed into place, marked complete by a file written last.

npm runs with ``--omit=dev --ignore-scripts`` (no package's install script runs on the
server: packages that must compile native code at install are not supported), ``npm ci`` when
the model has a lock and ``npm install`` otherwise, with a minimal environment (the proxy and
certificate variables of the gateway, nothing else) and its cache under the data directory.
The dependency policy, the vulnerability scan and the SBOM cover Python packages only; npm
packages are listed in the build log and not checked.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from algora.environments.builder import Environment
from algora.environments.network import INDEX_ACCESS
from algora.errors import BuildFailed, InvalidManifest

__all__ = [
    "MARKER",
    "find_node",
    "node_environment",
    "node_environment_hash",
    "node_version",
    "read_package",
]

MARKER = "algora-node-environment.json"
_PACKAGE = "package.json"
_LOCK = "package-lock.json"
_DIR_MODE = 0o700
_TAIL_LINES = 40


def find_node() -> Path:
    """The server's ``node`` executable; :class:`BuildFailed` when it has none."""
    found = shutil.which("node")
    if found is None:
        raise BuildFailed(
            "this server cannot serve Node.js models: node is not installed "
            "(install Node.js 18 or later on the server)"
        )
    return Path(found).resolve()


@functools.cache
def node_version(node: Path) -> str:
    """``node --version`` (``v20.11.1``), asked once per process."""
    try:
        done = subprocess.run(
            [str(node), "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildFailed(f"node ({node}) cannot be run: {exc}") from exc
    if done.returncode != 0 or not done.stdout.startswith("v"):
        raise BuildFailed(f"node ({node}) did not report its version")
    return done.stdout.strip()


def read_package(source: Path) -> tuple[bytes, bytes, bool]:
    """``(package.json, package-lock.json, whether there are dependencies to install)`` of the
    model in ``source``; :class:`InvalidManifest` when ``package.json`` is not a JSON object."""
    package = source / _PACKAGE
    if not package.is_file():
        return b"", b"", False
    raw = package.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidManifest(f"{_PACKAGE} is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("dependencies", {}), dict):
        raise InvalidManifest(f"{_PACKAGE} must hold a JSON object, its dependencies an object")
    lock = source / _LOCK
    return raw, lock.read_bytes() if lock.is_file() else b"", bool(data.get("dependencies"))


def node_environment_hash(version: str, package: bytes, lock: bytes) -> str:
    h = hashlib.sha256(b"algora-node-environment\0")
    for part in (version.encode(), package, lock):
        h.update(len(part).to_bytes(8, "big") + part)
    return h.hexdigest()


def node_environment(
    root: Path, source: Path, log: Callable[[str], None], *, timeout: float
) -> tuple[Environment, str]:
    """Build or reuse the environment of the Node model in ``source`` under ``root``.

    Returns the environment (its ``python`` is its ``bin/node``) and a description of it for
    the registry (Node's version and the lock, or ``package.json`` without one).
    """
    node = find_node()
    version = node_version(node)
    package, lock, install = read_package(source)
    env_hash = node_environment_hash(version, package, lock)
    target = root / env_hash
    described = f"node {version}\n" + (lock or package).decode("utf-8", "replace")
    if (target / MARKER).is_file():
        return Environment(env_hash, target, target / "bin" / "node", reused=True), described
    root.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
    staging = Path(tempfile.mkdtemp(prefix=".node-", dir=root))
    try:
        (staging / "bin").mkdir(mode=_DIR_MODE)
        (staging / "bin" / "node").symlink_to(node)
        if install:
            shutil.copyfile(source / _PACKAGE, staging / _PACKAGE)
            if lock:
                shutil.copyfile(source / _LOCK, staging / _LOCK)
            _npm(node, staging, root / ".npm-cache", ci=bool(lock), log=log, timeout=timeout)
        else:
            log("no dependencies in package.json: nothing to install")
        (staging / MARKER).write_text(json.dumps({"node": version}), encoding="utf-8")
        try:
            staging.rename(target)
        except OSError:
            if not (target / MARKER).is_file():  # else another build made the same one first
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return Environment(env_hash, target, target / "bin" / "node", reused=False), described


def _npm(
    node: Path, folder: Path, cache: Path, *, ci: bool, log: Callable[[str], None], timeout: float
) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise BuildFailed("this server has node but not npm: install npm to build Node models")
    command = [npm, "ci" if ci else "install", "--omit=dev", "--ignore-scripts"]
    command += ["--no-audit", "--no-fund", "--no-update-notifier", "--cache", str(cache)]
    env = {name: os.environ[name] for name in INDEX_ACCESS if name in os.environ}
    env.update(PATH=f"{node.parent}{os.pathsep}{os.defpath}", HOME=str(folder), LANG="C.UTF-8")
    log("$ npm " + " ".join(command[1:3]) + " --omit=dev --ignore-scripts")
    try:
        done = subprocess.run(
            command,
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BuildFailed(f"npm ran past {timeout:g} s installing the model's packages") from None
    lines = (done.stdout + done.stderr).splitlines()
    for line in lines:
        log(line)
    if done.returncode != 0:
        tail = "\n".join(lines[-_TAIL_LINES:])
        raise BuildFailed(
            f"npm could not install the packages of package.json (status {done.returncode}): "
            "check their names and versions, or commit a package-lock.json",
            details={"output": tail},
        )
    listed = subprocess.run(
        [npm, "ls", "--omit=dev", "--all", "--parseable=false"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    for line in listed.stdout.splitlines()[1:]:
        log("installed " + line.strip("└├─┬│ "))
