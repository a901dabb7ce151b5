"""npm packages as the dependency policy sees them: a ``package-lock.json``'s packages, the
policy's npm rules, ``npm audit``'s findings, and the CycloneDX SBOM of a Node environment.

A rule is an npm package name with an optional range in npm's own syntax after ``@``:
``"lodash"``, ``"lodash@<4.17.21"``, ``"@babel/core@^7"``. Ranges are matched as npm matches
them (``semantic_version.NpmSpec``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import semantic_version

from algora.environments.vulnscan import Finding, ScanResult, environment_bom

__all__ = [
    "NpmPackage",
    "cyclonedx_npm_json",
    "lock_packages",
    "parse_npm_audit",
    "rule_matches",
    "split_rule",
]

_SEVERITIES = {"critical": "critical", "high": "high", "moderate": "medium", "low": "low"}
"""npm's severities as the policy's (``info`` is npm's lowest: ``low`` here)."""


@dataclass(frozen=True)
class NpmPackage:
    name: str
    version: str
    license: str | None = None
    integrity: str | None = None


def split_rule(text: str) -> tuple[str, semantic_version.NpmSpec | None]:
    """``(name, range)`` of a rule; ValueError naming what is wrong."""
    at = text.rfind("@")
    name, spec = (text[:at], text[at + 1 :]) if at > 0 else (text, "")
    name = name.strip()
    if not name or any(c.isspace() for c in name) or name != name.lower():
        raise ValueError(f"{text!r} is not an npm package rule: a lower-case name, then @RANGE")
    if not spec.strip():
        return name, None
    try:
        return name, semantic_version.NpmSpec(spec.strip())
    except ValueError as exc:
        raise ValueError(f"{text!r}: {spec!r} is not an npm version range ({exc})") from None


def rule_matches(text: str, package: NpmPackage) -> bool | None:
    """Whether ``package`` is inside the rule's range; None when the rule names another
    package."""
    name, spec = split_rule(text)
    if name != package.name:
        return None
    if spec is None:
        return True
    try:
        return bool(spec.match(semantic_version.Version(package.version)))
    except ValueError:
        return False


def lock_packages(lock: bytes) -> list[NpmPackage]:
    """The installed (not dev) packages of a ``package-lock.json`` (lockfile version 2 or 3),
    each once by name and version; ValueError when it is not such a lock."""
    try:
        data = json.loads(lock.decode("utf-8"))
        entries = data["packages"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise ValueError(
            "package-lock.json is not an npm lockfile of version 2 or 3: regenerate it with "
            "npm 7 or later"
        ) from None
    found: dict[tuple[str, str], NpmPackage] = {}
    for path, entry in entries.items():
        if not path or not isinstance(entry, dict) or entry.get("dev") or entry.get("link"):
            continue
        name = entry.get("name") or path.rpartition("node_modules/")[2]
        version = entry.get("version")
        if not isinstance(version, str):
            continue
        license_ = entry.get("license")
        found[(name, version)] = NpmPackage(
            name,
            version,
            license_ if isinstance(license_, str) else None,
            entry.get("integrity") if isinstance(entry.get("integrity"), str) else None,
        )
    return sorted(found.values(), key=lambda p: (p.name, p.version))


def parse_npm_audit(text: str, packages: list[NpmPackage]) -> ScanResult:
    """The findings of ``npm audit --json`` (report version 2): each advisory of each package
    (the entries that only point at another vulnerable package are that package's findings)."""
    try:
        report = json.loads(text)
    except ValueError:
        return ScanResult(error="npm audit did not answer JSON")
    if not isinstance(report, dict):
        return ScanResult(error="npm audit did not answer a report")
    if "error" in report:
        error = report["error"]
        summary = error.get("summary") if isinstance(error, dict) else error
        summary = summary or report.get("message") or "no reason given"  # e.g. HTTP 405
        return ScanResult(error=f"npm audit failed: {str(summary)[:500]}")
    versions = {p.name: p.version for p in packages}
    findings: list[Finding] = []
    for name, entry in (report.get("vulnerabilities") or {}).items():
        for via in entry.get("via") or ():
            if not isinstance(via, dict):
                continue
            url = str(via.get("url") or "")
            advisory = url.rstrip("/").rpartition("/")[2] or str(via.get("source", "npm"))
            findings.append(
                Finding(
                    package=name,
                    version=versions.get(name, ""),
                    id=advisory,
                    description=str(via.get("title") or ""),
                    severity=_SEVERITIES.get(str(via.get("severity")), "low"),
                )
            )
    return ScanResult(findings=tuple(findings))


def cyclonedx_npm_json(packages: list[NpmPackage], env_hash: str, node_version: str) -> str:
    """A CycloneDX 1.6 JSON document of a Node environment's npm packages."""
    from cyclonedx.model import HashAlgorithm, HashType
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.license import LicenseExpression
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    root, bom = environment_bom(
        env_hash, f"Node.js {node_version} environment installed by npm from a lock"
    )
    algorithms = {"sha512": HashAlgorithm.SHA_512, "sha256": HashAlgorithm.SHA_256}
    components = []
    for package in packages:
        namespace, _, bare = package.name.rpartition("/")
        purl = PackageURL(type="npm", namespace=namespace or None, name=bare,
                          version=package.version)  # fmt: skip
        extra: dict[str, Any] = {}
        if package.integrity and "-" in package.integrity:
            alg, _, digest = package.integrity.partition("-")
            if alg in algorithms:
                extra["hashes"] = [HashType(alg=algorithms[alg], content=_hex(digest))]
        if package.license:
            extra["licenses"] = [LicenseExpression(package.license)]
        component = Component(
            name=package.name,
            version=package.version,
            type=ComponentType.LIBRARY,
            purl=purl,
            bom_ref=purl.to_string(),
            **extra,
        )
        components.append(component)
        bom.components.add(component)
    bom.register_dependency(root, components)
    return JsonV1Dot6(bom).output_as_string(indent=2)


def _hex(base64_digest: str) -> str:
    import base64

    return base64.b64decode(base64_digest).hex()
