"""Steps 2 to 4 of the publish path for a Node.js model: npm in place of uv.

``algora.environments.node`` installs the packages of the model's ``package.json``; the
dependency policy and the vulnerability scan cover Python packages only, which the version's
lineage says (``policy_warnings``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from algora.environments.builder import Environment
from algora.environments.node import node_environment, read_package
from algora.settings import Settings

__all__ = ["NOT_CHECKED", "Record", "Step", "node_requirements", "node_steps"]

Step = Callable[[int, str], None]
"""Writes step N's line to a build log."""
Record = Callable[[dict[str, Any]], None]
"""Receives the policy check's lineage entries."""

NOT_CHECKED = "npm packages are not checked by the dependency policy or the vulnerability scan"


def node_requirements(source: Path) -> list[str]:
    """A Node model's Python requirements: none. Its ``package.json`` is checked here, at
    publish, so that a broken one is refused at once (:class:`InvalidManifest`)."""
    read_package(source)
    return []


def node_steps(
    settings: Settings,
    source: Path,
    step: Step,
    log: Callable[[str], None],
    record_environment: Callable[[str, str, str], None],
    record_policy: Record | None,
) -> tuple[Environment, dict[str, Any]]:
    """Build or reuse the model's environment; return it and the policy's lineage entries."""
    step(2, "package.json and package-lock.json (npm; a Node.js model)")
    step(3, "not applied: " + NOT_CHECKED)
    log(f"warning: {NOT_CHECKED}")
    policy: dict[str, Any] = {"sbom": None, "vulnerabilities": [], "policy_warnings": [NOT_CHECKED]}
    if record_policy is not None:
        record_policy(policy)
    step(4, "creating or reusing the environment")
    root = settings.resolved_data_dir / "envs"
    env, described = node_environment(root, source, log, timeout=settings.build_timeout)
    record_environment(env.hash, described.split("\n", 1)[0], described)
    return env, policy
