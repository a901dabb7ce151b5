"""The platform's dependency policy, enforced at publish on the resolved lock.

Admins write it as a TOML file (``Settings.policy_file``); without one every package is
allowed and vulnerabilities only warn. Example::

    index_url = "https://pypi.org/simple"   # must equal Settings.index_url
    allow_sdists = false                     # lock and install wheels only

    [packages]
    allow = ["numpy>=1.26", "scikit-learn", "scipy", "joblib", "threadpoolctl"]
    deny = ["pyyaml<5.4", "torch"]

    [npm]                                    # a Node.js model's npm packages, npm's ranges
    deny = ["lodash@<4.17.21", "event-stream"]

    [vulnerabilities]
    block = ["critical", "high"]
    warn = ["medium", "low", "unknown"]
    unknown_severity = "unknown"
    on_unavailable = "fail"
    cache_seconds = 900

    [[vulnerabilities.exceptions]]
    id = "PYSEC-2024-1"                 # the advisory id or any of its aliases (GHSA, CVE)
    package = "jinja2"
    expires = 2027-01-01
    reason = "not reachable: we never render user templates"

Rules apply to every locked package, the transitive ones included:

- ``packages.deny``: a package matching a rule (name, and version inside the rule's PEP 440
  range; no range means every version) is refused. Deny wins over allow.
- ``packages.allow``: when present, a package must match one of its rules. Absent means
  every package not denied is allowed.
- ``npm``: the same two rules for the npm packages of a Node.js model's lock (its own
  ``package-lock.json``, or the one npm resolves at publish), with npm's range syntax after
  ``@``; their ``npm audit`` findings meet the same ``vulnerabilities`` rules.
- ``vulnerabilities``: each finding of the scan (:mod:`algora.environments.vulnscan`) is classed
  by its severity. PyPI's advisory feed, which pip-audit reads, carries no severity, so a
  finding without one is classed ``unknown_severity`` (default ``"unknown"``): put
  ``"unknown"`` in ``block`` (or set ``unknown_severity = "high"``) to refuse every known
  vulnerability. A severity in ``block`` refuses the publish, one in ``warn`` is recorded in
  the version's lineage, any other is ignored. An unexpired exception turns a finding into a
  warning; an expired one no longer applies (and says so).
- ``on_unavailable``: what a scan that could not run, or could not audit a package (the
  service unreachable, a package unknown to it), does: ``"fail"`` refuses the publish,
  ``"warn"`` records a warning.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from algora.environments.npm_packages import NpmPackage, rule_matches, split_rule
from algora.environments.spec import canonical_lock
from algora.environments.vulnscan import Finding, ScanResult
from algora.errors import AlgoraError, PolicyViolation

__all__ = [
    "SEVERITIES",
    "LockedPackage",
    "Policy",
    "PolicyReport",
    "Violation",
    "load_policy",
    "locked_packages",
]

Severity = Literal["critical", "high", "medium", "low", "unknown"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low", "unknown")


def _severities(*names: Severity) -> list[Severity]:
    return list(names)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _rule(text: str) -> Requirement:
    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        raise ValueError(f"{text!r} is not a package rule: {str(exc).splitlines()[0]}") from None
    if requirement.url or requirement.marker or requirement.extras:
        raise ValueError(f"{text!r}: a rule is a name with an optional version range only")
    return requirement


class PackageRules(_Strict):
    allow: list[str] | None = None
    """When given, only packages matching one of these rules may be locked."""
    deny: list[str] = Field(default_factory=list)
    """Packages (and version ranges) that may never be locked; deny wins over allow."""

    @field_validator("allow", "deny")
    @classmethod
    def _rules(cls, value: list[str] | None) -> list[str] | None:
        for text in value or []:
            cls._parse(text)
        return value

    @staticmethod
    def _parse(text: str) -> object:
        return _rule(text)


class NpmRules(PackageRules):
    """The same rules for a Node.js model's npm packages: ``name`` or ``name@RANGE`` (npm's
    range syntax: ``lodash@<4.17.21``, ``@babel/core@^7``)."""

    @staticmethod
    def _parse(text: str) -> object:
        return split_rule(text)


class VulnerabilityException(_Strict):
    id: str = Field(min_length=1)
    package: str = Field(min_length=1)
    expires: dt.date
    reason: str = Field(min_length=1)

    def covers(self, finding: Finding) -> bool:
        ids = {finding.id.upper(), *(alias.upper() for alias in finding.aliases)}
        same_package = canonicalize_name(self.package) == canonicalize_name(finding.package)
        return same_package and self.id.upper() in ids


class VulnerabilityRules(_Strict):
    block: list[Severity] = Field(default_factory=lambda: _severities("critical", "high"))
    warn: list[Severity] = Field(default_factory=lambda: _severities("medium", "low", "unknown"))
    unknown_severity: Severity = "unknown"
    """The class of a finding whose advisory gives no severity (PyPI's feed never does)."""
    on_unavailable: Literal["fail", "warn"] = "fail"
    cache_seconds: float = Field(default=900, ge=0)
    """How long a scan result of one lock is reused (the SBOM is kept for good)."""
    exceptions: list[VulnerabilityException] = Field(default_factory=list)

    @model_validator(mode="after")
    def _disjoint(self) -> VulnerabilityRules:
        both = sorted(set(self.block) & set(self.warn))
        if both:
            raise ValueError(f"severities {both} are in both block and warn")
        return self


class Policy(_Strict):
    """The dependency policy; :meth:`permissive` is the default without a policy file."""

    index_url: str | None = None
    """The one package index; must equal the platform's ``index_url`` when given."""
    allow_sdists: bool = True
    """False: lock and install with ``--only-binary :all:`` (no package builds from source)."""
    packages: PackageRules = Field(default_factory=PackageRules)
    npm: NpmRules = Field(default_factory=NpmRules)
    vulnerabilities: VulnerabilityRules = Field(default_factory=VulnerabilityRules)

    @classmethod
    def permissive(cls) -> Policy:
        """Every package allowed; vulnerabilities and unavailable scans only warn."""
        return cls(
            vulnerabilities=VulnerabilityRules(
                block=[],
                warn=list(SEVERITIES),
                on_unavailable="warn",
            )
        )

    def evaluate(
        self, lock: str, scan: ScanResult | None = None, today: dt.date | None = None
    ) -> PolicyReport:
        """The report of ``lock`` (and its vulnerability ``scan``) against this policy."""
        report = PolicyReport()
        packages = locked_packages(lock)
        for package in packages:
            self._package_rules(package, report)
        return self._scanned(report, {p.name: p.version for p in packages}, scan, today)

    def evaluate_npm(
        self, packages: list[NpmPackage], scan: ScanResult | None, today: dt.date | None = None
    ) -> PolicyReport:
        """The report of a Node environment's npm ``packages`` (and their ``npm audit``)."""
        report = PolicyReport()
        for package in packages:
            self._npm_rules(package, report)
        return self._scanned(report, {p.name: p.version for p in packages}, scan, today)

    def _scanned(
        self,
        report: PolicyReport,
        versions: dict[str, str],
        scan: ScanResult | None,
        today: dt.date | None,
    ) -> PolicyReport:
        """``report`` with the vulnerability rules applied to ``scan`` (when there is one)."""
        if scan is not None:
            self._vulnerabilities(versions, scan, report, today or dt.datetime.now(dt.UTC).date())
        return report

    def _npm_rules(self, package: NpmPackage, report: PolicyReport) -> None:
        pinned = f"npm package {package.name} {package.version}"
        locked = LockedPackage(package.name, package.version)
        for text in self.npm.deny:
            if rule_matches(text, package):
                report.violation(locked, f"npm.deny {text}", f"{pinned} is denied by rule '{text}'")
                return
        if self.npm.allow is None:
            return
        named = [t for t in self.npm.allow if rule_matches(t, package) is not None]
        if not named:
            report.violation(locked, "npm.allow", f"{pinned} is not allowed: not in npm.allow")
        elif not any(rule_matches(text, package) for text in named):
            rules = " or ".join(f"'{text}'" for text in named)
            report.violation(locked, named[0], f"{pinned} is not allowed by rule {rules}")

    def check_lock(
        self, lock: str, scan: ScanResult | None = None, today: dt.date | None = None
    ) -> PolicyReport:
        """Like :meth:`evaluate`, raising :class:`PolicyViolation` when a rule is broken."""
        report = self.evaluate(lock, scan, today)
        report.raise_for_violations()
        return report

    def _package_rules(self, package: LockedPackage, report: PolicyReport) -> None:
        name = canonicalize_name(package.name)
        pinned = f"{package.name} {package.version}"
        for text in self.packages.deny:
            rule = _rule(text)
            if canonicalize_name(rule.name) == name and _contains(rule, package.version):
                report.violation(package, text, f"{pinned} is denied by rule '{text}'")
                return
        if self.packages.allow is None:
            return
        named = [t for t in self.packages.allow if canonicalize_name(_rule(t).name) == name]
        if not named:
            report.violation(
                package, "packages.allow", f"{pinned} is not allowed: it is not in packages.allow"
            )
        elif not any(_contains(_rule(text), package.version) for text in named):
            rules = " or ".join(f"'{text}'" for text in named)
            report.violation(package, named[0], f"{pinned} is not allowed by rule {rules}")

    def _vulnerabilities(
        self, versions: dict[str, str], scan: ScanResult, report: PolicyReport, today: dt.date
    ) -> None:
        rules = self.vulnerabilities
        unavailable: list[tuple[str, str]] = []
        if scan.error:
            unavailable.append(("", f"the vulnerability scan could not run: {scan.error}"))
        unavailable += [(name, f"{name} was not audited: {why}") for name, why in scan.unaudited]
        for name, text in unavailable:
            if rules.on_unavailable == "fail":
                rule = "vulnerabilities.on_unavailable = 'fail'"
                report.violations.append(Violation(name, versions.get(name, ""), rule, text))
            else:
                report.warnings.append(text)
        for finding in scan.findings:
            severity = finding.severity or rules.unknown_severity
            record = {**finding.as_dict(), "severity": severity}
            described = (
                f"{finding.package} {finding.version} has vulnerability {finding.label} "
                f"of severity {severity}"
            )
            exception = next((e for e in rules.exceptions if e.covers(finding)), None)
            if exception is not None and exception.expires >= today:
                report.warnings.append(
                    f"{described}, excepted until {exception.expires}: {exception.reason}"
                )
                report.vulnerabilities.append({**record, "action": "excepted"})
                continue
            if finding.fix_versions:
                described += f" (fixed in {', '.join(finding.fix_versions)})"
            if exception is not None:
                described += f"; its exception expired on {exception.expires}"
            if severity in rules.block:
                report.violations.append(
                    Violation(
                        finding.package,
                        finding.version,
                        "vulnerabilities.block",
                        f"{described}, blocked by rule 'vulnerabilities.block'",
                    )
                )
            elif severity in rules.warn:
                report.warnings.append(described)
                report.vulnerabilities.append({**record, "action": "warn"})


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str


@dataclass(frozen=True)
class Violation:
    """One broken rule: ``package`` and ``version`` are empty for a failed scan."""

    package: str
    version: str
    rule: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {
            "package": self.package,
            "version": self.version,
            "rule": self.rule,
            "message": self.message,
        }


@dataclass
class PolicyReport:
    """What a lock did against the policy: broken rules, warnings, recorded findings."""

    violations: list[Violation] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    vulnerabilities: list[dict[str, Any]] = field(default_factory=list)
    """The findings that warned or were excepted, as recorded in the version's lineage."""

    @property
    def ok(self) -> bool:
        return not self.violations

    def violation(self, package: LockedPackage, rule: str, message: str) -> None:
        self.violations.append(Violation(package.name, package.version, rule, message))

    def raise_for_violations(self) -> None:
        if self.violations:
            raise PolicyViolation(
                "refused by the dependency policy: "
                + "; ".join(v.message for v in self.violations),
                details={
                    "violations": [v.as_dict() for v in self.violations],
                    "warnings": self.warnings,
                },
            )


def locked_packages(lock: str) -> list[LockedPackage]:
    """The ``name==version`` pins of a uv lock, names normalized (PEP 503)."""
    packages: list[LockedPackage] = []
    for entry in canonical_lock(lock):
        text = " ".join(token for token in entry.split() if not token.startswith("--hash"))
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            raise PolicyViolation(f"the lock has an entry that is not a pin: {text!r}") from None
        pins = [s.version for s in requirement.specifier if s.operator in ("==", "===")]
        if requirement.url or len(pins) != 1:
            raise PolicyViolation(f"the lock has an entry that is not a pin: {text!r}")
        packages.append(LockedPackage(canonicalize_name(requirement.name), pins[0]))
    return packages


def load_policy(path: Path | None, index_url: str) -> Policy:
    """The policy in ``path`` (permissive when None), checked against the platform's index.

    Raises :class:`~algora.errors.AlgoraError` with a clear message when the file is missing,
    not TOML, invalid, or names another index than ``index_url``: the platform refuses to
    start rather than publish under a policy nobody meant.
    """
    if path is None:
        return Policy.permissive()
    where = f"policy file {path}"
    try:
        data = tomllib.loads(Path(path).expanduser().read_text(encoding="utf-8"))
    except OSError as exc:
        raise AlgoraError(f"{where} cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AlgoraError(f"{where} is not valid TOML: {exc}") from None
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise AlgoraError(f"{where} is invalid: " + "; ".join(problems)) from None
    if policy.index_url is not None and policy.index_url.rstrip("/") != index_url.rstrip("/"):
        raise AlgoraError(
            f"{where} allows only the index {policy.index_url!r} but the platform locks from "
            f"{index_url!r} (ALGORA_INDEX_URL): make the two agree"
        )
    return policy


def _contains(rule: Requirement, version: str) -> bool:
    if not rule.specifier:
        return True
    try:
        return rule.specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False
