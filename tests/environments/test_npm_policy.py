"""The dependency policy over a Node.js model's npm packages: rules with npm's ranges, the
packages of a package-lock.json, npm audit's report, and the CycloneDX SBOM."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from algora.environments.npm_packages import (
    NpmPackage,
    cyclonedx_npm_json,
    lock_packages,
    parse_npm_audit,
    rule_matches,
    split_rule,
)
from algora.environments.policy import Policy
from algora.errors import PolicyViolation

LOCK = json.dumps(
    {
        "name": "model",
        "lockfileVersion": 3,
        "packages": {
            "": {"name": "model", "dependencies": {"lodash": "^4.17.0", "@babel/core": "^7"}},
            "node_modules/lodash": {
                "version": "4.17.20",
                "license": "MIT",
                "integrity": "sha512-" + "A" * 86 + "==",
            },
            "node_modules/@babel/core": {"version": "7.24.0", "license": "MIT"},
            "node_modules/@babel/core/node_modules/semver": {"version": "6.3.1"},
            "node_modules/jest": {"version": "29.0.0", "dev": True},
        },
    }
).encode()
TODAY = dt.date(2026, 12, 3)


def test_rules_take_npm_names_and_ranges() -> None:
    assert split_rule("lodash")[0] == "lodash" and split_rule("lodash")[1] is None
    name, spec = split_rule("@babel/core@^7")
    assert name == "@babel/core" and spec is not None
    assert rule_matches("lodash@<4.17.21", NpmPackage("lodash", "4.17.20")) is True
    assert rule_matches("lodash@<4.17.21", NpmPackage("lodash", "4.17.21")) is False
    assert rule_matches("lodash", NpmPackage("underscore", "1.0.0")) is None
    for bad in ("Lodash", "lodash@not a range!", "two words"):
        with pytest.raises(ValueError, match="npm"):
            split_rule(bad)


def test_a_lock_gives_its_installed_packages_not_its_dev_ones() -> None:
    packages = lock_packages(LOCK)
    assert [(p.name, p.version) for p in packages] == [
        ("@babel/core", "7.24.0"), ("lodash", "4.17.20"), ("semver", "6.3.1"),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="lockfile of version 2 or 3"):
        lock_packages(b'{"lockfileVersion": 1, "dependencies": {}}')


def test_deny_and_allow_rules_name_the_package_and_the_rule() -> None:
    packages = lock_packages(LOCK)
    denied = Policy.model_validate({"npm": {"deny": ["lodash@<4.17.21"]}})
    report = denied.evaluate_npm(packages, None, TODAY)
    assert [v.message for v in report.violations] == [
        "npm package lodash 4.17.20 is denied by rule 'lodash@<4.17.21'"
    ]
    with pytest.raises(PolicyViolation):
        report.raise_for_violations()
    allowed = Policy.model_validate({"npm": {"allow": ["lodash", "@babel/core@^7"]}})
    messages = [v.message for v in allowed.evaluate_npm(packages, None, TODAY).violations]
    assert messages == ["npm package semver 6.3.1 is not allowed: not in npm.allow"]
    assert Policy.permissive().evaluate_npm(packages, None, TODAY).ok
    with pytest.raises(ValueError, match="not an npm package rule"):
        Policy.model_validate({"npm": {"deny": ["Bad Name"]}})


AUDIT = {
    "auditReportVersion": 2,
    "vulnerabilities": {
        "lodash": {
            "name": "lodash",
            "severity": "high",
            "via": [
                {
                    "source": 1106913,
                    "name": "lodash",
                    "title": "Command Injection in lodash",
                    "url": "https://github.com/advisories/GHSA-35jh-r3h4-6jhm",
                    "severity": "high",
                }
            ],
        },
        "@babel/core": {"name": "@babel/core", "severity": "moderate", "via": ["semver"]},
        "semver": {
            "name": "semver",
            "via": [{"source": 1, "title": "ReDoS", "url": "u/GHSA-c2qf", "severity": "moderate"}],
        },
    },
}


def test_npm_audit_findings_meet_the_vulnerability_rules() -> None:
    packages = lock_packages(LOCK)
    scan = parse_npm_audit(json.dumps(AUDIT), packages)
    assert [(f.package, f.version, f.id, f.severity) for f in scan.findings] == [
        ("lodash", "4.17.20", "GHSA-35jh-r3h4-6jhm", "high"),
        ("semver", "6.3.1", "GHSA-c2qf", "medium"),
    ]
    report = Policy().evaluate_npm(packages, scan, TODAY)  # block critical and high
    assert [v.package for v in report.violations] == ["lodash"]
    assert "GHSA-c2qf" in report.warnings[0]
    failed = parse_npm_audit(json.dumps({"error": {"summary": "network down"}}), packages)
    assert failed.error == "npm audit failed: network down"
    refused = {"message": "405 Method Not Allowed - POST .../advisories/bulk", "error": {}}
    assert "405 Method Not Allowed" in str(parse_npm_audit(json.dumps(refused), packages).error)
    assert not Policy().evaluate_npm(packages, failed, TODAY).ok  # on_unavailable = "fail"


def test_the_sbom_lists_every_package_with_its_purl_licence_and_hash() -> None:
    pytest.importorskip("cyclonedx")
    document = json.loads(cyclonedx_npm_json(lock_packages(LOCK), "e" * 64, "v20.0.0"))
    by_name = {c["name"]: c for c in document["components"]}
    assert by_name["@babel/core"]["purl"] == "pkg:npm/%40babel/core@7.24.0"
    lodash = by_name["lodash"]
    assert lodash["licenses"] == [{"expression": "MIT"}]
    assert lodash["hashes"][0]["alg"] == "SHA-512" and len(lodash["hashes"][0]["content"]) == 128
    assert "Node.js v20.0.0" in document["metadata"]["component"]["description"]
