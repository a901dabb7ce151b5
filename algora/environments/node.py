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
At publish, :func:`resolve_lock` gives the lock (the model's own, or one npm resolves without
installing) whose packages the dependency policy checks, :func:`npm_audit` scans, and the SBOM
lists, before the environment is installed from that same lock.
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
    "npm_audit",
    "read_package",
    "resolve_lock",
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


def resolve_lock(root: Path, source: Path, log: Callable[[str], None], *, timeout: float) -> bytes:
    """The model's ``package-lock.json``: its own, or the one npm resolves from its
    ``package.json`` without installing anything (empty when there is nothing to install)."""
    _package, lock, install = read_package(source)
    if not install or lock:
        return lock if install else b""
    node = find_node()
    root.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
    with tempfile.TemporaryDirectory(prefix=".lock-", dir=root) as folder:
        shutil.copyfile(source / _PACKAGE, Path(folder) / _PACKAGE)
        _run_npm(node, Path(folder), root / ".npm-cache", ["install", "--package-lock-only"],
                 log=log, timeout=timeout)  # fmt: skip
        return (Path(folder) / _LOCK).read_bytes()


def npm_audit(root: Path, lock: bytes, *, timeout: float) -> str:
    """``npm audit --json`` of ``lock`` (the registry's advisories; nothing is installed):
    its report, or a JSON ``error`` object when npm could not run."""
    npm = shutil.which("npm")
    if npm is None:
        return json.dumps({"error": {"summary": "npm is not installed"}})
    node = find_node()
    with tempfile.TemporaryDirectory(prefix=".audit-", dir=root) as folder:
        (Path(folder) / _LOCK).write_bytes(lock)
        (Path(folder) / _PACKAGE).write_text(json.dumps(_package_of(lock)), encoding="utf-8")
        command = [npm, "audit", "--json", "--omit=dev", "--package-lock-only"]
        command += ["--cache", str(root / ".npm-cache")]
        try:
            done = subprocess.run(
                command,
                cwd=folder, env=_npm_env(node, Path(folder)), capture_output=True, text=True,
                timeout=timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return json.dumps({"error": {"summary": f"npm audit ran past {timeout:g} s"}})
    return done.stdout or json.dumps({"error": {"summary": done.stderr[-500:]}})


def _package_of(lock: bytes) -> dict[str, object]:
    """The root ``package.json`` a lock was made from (npm audit wants one beside it)."""
    root = json.loads(lock.decode("utf-8")).get("packages", {}).get("", {})
    return {k: root[k] for k in ("name", "version", "dependencies") if k in root}


def node_environment(
    root: Path,
    source: Path,
    log: Callable[[str], None],
    *,
    timeout: float,
    lock: bytes | None = None,
) -> tuple[Environment, str]:
    """Build or reuse the environment of the Node model in ``source`` under ``root``, from
    ``lock`` when given (the one the policy checked) and else the model's own.

    Returns the environment (its ``python`` is its ``bin/node``) and a description of it for
    the registry (Node's version and the lock, or ``package.json`` without one).
    """
    node = find_node()
    version = node_version(node)
    package, own_lock, install = read_package(source)
    lock = own_lock if lock is None else lock
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
                (staging / _LOCK).write_bytes(lock)
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


def _npm_env(node: Path, home: Path) -> dict[str, str]:
    env = {name: os.environ[name] for name in INDEX_ACCESS if name in os.environ}
    env.update(PATH=f"{node.parent}{os.pathsep}{os.defpath}", HOME=str(home), LANG="C.UTF-8")
    return env


def _npm(
    node: Path, folder: Path, cache: Path, *, ci: bool, log: Callable[[str], None], timeout: float
) -> None:
    _run_npm(node, folder, cache, ["ci" if ci else "install"], log=log, timeout=timeout)
    npm = shutil.which("npm") or "npm"
    env = _npm_env(node, folder)
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


def _run_npm(
    node: Path,
    folder: Path,
    cache: Path,
    verb: list[str],
    *,
    log: Callable[[str], None],
    timeout: float,
) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise BuildFailed("this server has node but not npm: install npm to build Node models")
    command = [npm, *verb, "--omit=dev", "--ignore-scripts"]
    command += ["--no-audit", "--no-fund", "--no-update-notifier", "--cache", str(cache)]
    env = _npm_env(node, folder)
    log("$ npm " + " ".join(verb) + " --omit=dev --ignore-scripts")
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
