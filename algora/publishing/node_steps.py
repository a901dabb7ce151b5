"""Steps 2 to 4 of the publish path for a Node.js model: npm in place of uv.

Step 2 takes the model's ``package-lock.json`` (or has npm resolve one from its
``package.json``, installing nothing); step 3 holds that lock's npm packages to the dependency
policy (its ``[npm]`` rules and the ``vulnerabilities`` rules over ``npm audit``) and writes
their CycloneDX SBOM; step 4 installs the environment from that same lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from algora.environments.builder import Environment
from algora.environments.node import (
    find_node,
    node_environment,
    node_environment_hash,
    node_version,
    npm_audit,
    read_package,
    resolve_lock,
)
from algora.environments.npm_packages import cyclonedx_npm_json, lock_packages, parse_npm_audit
from algora.environments.policy import Policy
from algora.environments.vulnscan import INSTALL_HINT, Auditor
from algora.errors import InvalidManifest
from algora.settings import Settings
from algora.store.base import BlobStore

__all__ = ["Record", "Step", "node_requirements", "node_steps"]

Step = Callable[[int, str], None]
"""Writes step N's line to a build log."""
Record = Callable[[dict[str, Any]], None]
"""Receives the policy check's lineage entries."""


def node_requirements(source: Path) -> list[str]:
    """A Node model's Python requirements: none. Its ``package.json`` is checked here, at
    publish, so that a broken one is refused at once (:class:`InvalidManifest`)."""
    read_package(source)
    return []


def node_steps(
    settings: Settings,
    checks: tuple[Policy, BlobStore, Auditor],
    source: Path,
    step: Step,
    log: Callable[[str], None],
    record_environment: Callable[[str, str, str], None],
    record_policy: Record | None,
) -> tuple[Environment, dict[str, Any]]:
    """Build or reuse the model's environment; return it and the policy's lineage entries."""
    root = settings.resolved_data_dir / "envs"
    step(2, "package.json and package-lock.json (npm; a Node.js model)")
    lock = resolve_lock(root, source, log, timeout=settings.build_timeout)
    step(3, "npm package rules and known vulnerabilities")
    policy = _check_npm_policy(checks, root, source, lock, log, settings.build_timeout)
    if record_policy is not None:
        record_policy(policy)
    step(4, "creating or reusing the environment")
    env, described = node_environment(
        root, source, log, timeout=settings.build_timeout, lock=lock or None
    )
    record_environment(env.hash, described.split("\n", 1)[0], described)
    return env, policy


def _check_npm_policy(
    checks: tuple[Policy, BlobStore, Auditor],
    root: Path,
    source: Path,
    lock: bytes,
    log: Callable[[str], None],
    timeout: float,
) -> dict[str, Any]:
    """Hold the lock's npm packages to the policy; the SBOM and warnings as lineage entries.
    Raises :class:`~algora.errors.PolicyViolation` naming each package and rule it broke."""
    policy, store, auditor = checks
    started = time.monotonic()
    try:
        packages = lock_packages(lock) if lock else []
    except ValueError as exc:
        raise InvalidManifest(str(exc)) from None
    scan = parse_npm_audit(npm_audit(root, lock, timeout=timeout), packages) if packages else None
    report = policy.evaluate_npm(packages, scan)
    for warning in report.warnings:
        log(f"warning: {warning}")
    report.raise_for_violations()
    version = node_version(find_node())
    env_hash = node_environment_hash(version, read_package(source)[0], lock)
    path = auditor.sbom_file(env_hash, lambda: cyclonedx_npm_json(packages, env_hash, version))
    sbom = store.put_file(path) if path is not None else None
    made = f"SBOM {sbom[:12]}" if sbom else f"no SBOM ({INSTALL_HINT})"
    took = time.monotonic() - started
    log(f"{len(packages)} npm package(s): policy passed in {took:.2f}s; {made}")
    return {"sbom": sbom, "vulnerabilities": report.vulnerabilities,
            "policy_warnings": report.warnings}  # fmt: skip
