"""Vulnerability scans and SBOMs of locks: the one module that runs pip-audit.

:meth:`Auditor.scan` runs ``pip-audit`` in a subprocess of the gateway's own interpreter on
the hashed lock (``--disable-pip``: nothing is resolved or installed) against PyPI's advisory
feed, and reads its JSON report into a :class:`ScanResult`. A scan that cannot run or reach its
service says so in ``error``; a package the service does not know (a 404 from the feed) is
listed in ``unaudited``. The policy (:mod:`algora.environments.policy`) decides what either
means. Results are kept for ``cache_seconds`` per lock: advisories change, locks do not.

:meth:`Auditor.sbom` writes a CycloneDX 1.6 JSON SBOM of an environment from its lock: one
component per locked package with its PyPI purl and hashes, and the dependency graph from the
lock's ``# via`` comments. It is written once per environment hash and kept.

Both need the ``vulnscan`` extra (pip-audit, cyclonedx-python-lib); without it a scan reports
an ``error`` that says what to install, and there is no SBOM.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from algora.environments.network import INDEX_ACCESS
from algora.environments.spec import canonical_lock

__all__ = ["INSTALL_HINT", "Auditor", "Finding", "ScanResult", "parse_pip_audit"]

INSTALL_HINT = "pip install 'algora[vulnscan]'"

logger = logging.getLogger(__name__)

Log = Callable[[str], None]

# What pip-audit needs from the gateway's process environment to reach PyPI; nothing else.
# (pip-audit's requests also reads its own certificate variables.)
_PASSTHROUGH = (
    "PATH",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    *INDEX_ACCESS,
)
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*===?\s*([^\s;\\]+)")
_HASH = re.compile(r"--hash=(\w+):([0-9a-fA-F]+)")
_ERROR_CHARS = 1000


@dataclass(frozen=True)
class Finding:
    """One known vulnerability of one locked package; ``severity`` None when unknown."""

    package: str
    version: str
    id: str
    aliases: tuple[str, ...] = ()
    fix_versions: tuple[str, ...] = ()
    description: str = ""
    severity: str | None = None

    @property
    def label(self) -> str:
        return f"{self.id} ({', '.join(self.aliases)})" if self.aliases else self.id

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["aliases"] = list(self.aliases)
        data["fix_versions"] = list(self.fix_versions)
        data["description"] = self.description[:500]
        return data


@dataclass(frozen=True)
class ScanResult:
    """What a scan found; ``error`` set when it could not run or reach its service."""

    findings: tuple[Finding, ...] = ()
    unaudited: tuple[tuple[str, str], ...] = ()
    """(package, reason) for each package the service could not audit."""
    error: str | None = None
    scanned_at: float = field(default_factory=time.time)


def parse_pip_audit(text: str) -> ScanResult:
    """The :class:`ScanResult` of a ``pip-audit -f json`` report."""
    report = json.loads(text)
    if not isinstance(report, dict) or not isinstance(report.get("dependencies"), list):
        raise ValueError("not a pip-audit JSON report")
    findings: list[Finding] = []
    unaudited: list[tuple[str, str]] = []
    for dep in report["dependencies"]:
        name = str(canonicalize_name(str(dep["name"])))
        if "skip_reason" in dep:
            unaudited.append((name, str(dep["skip_reason"])))
            continue
        for vuln in dep.get("vulns", []):
            severity = vuln.get("severity")  # no pip-audit service reports one today
            findings.append(
                Finding(
                    package=name,
                    version=str(dep["version"]),
                    id=str(vuln["id"]),
                    aliases=tuple(str(a) for a in vuln.get("aliases", [])),
                    fix_versions=tuple(str(v) for v in vuln.get("fix_versions", [])),
                    description=str(vuln.get("description") or ""),
                    severity=str(severity).lower() if severity else None,
                )
            )
    return ScanResult(tuple(findings), tuple(unaudited))


class Auditor:
    """Scans locks with pip-audit and writes environments' SBOMs, under ``root``."""

    def __init__(self, root: Path, *, cache_seconds: float = 900, timeout: float = 300) -> None:
        self.root = Path(root)
        self.cache_seconds = cache_seconds
        self.timeout = timeout
        self._scans: dict[str, ScanResult] = {}
        self._lock = threading.Lock()

    # ---------------------------------------------------------------------------------------
    # vulnerabilities

    def scan(self, lock: str, log: Log) -> ScanResult:
        """The vulnerabilities of ``lock``'s packages (reused for ``cache_seconds``)."""
        entries = canonical_lock(lock)
        if not entries:
            return ScanResult()
        key = hashlib.sha256("\n".join(entries).encode()).hexdigest()
        with self._lock:
            cached = self._scans.get(key)
        if cached is not None and time.time() - cached.scanned_at < self.cache_seconds:
            log(f"vulnerability scan of this lock from {time.time() - cached.scanned_at:.0f}s ago")
            return cached
        log(f"scanning {len(entries)} locked package(s) with pip-audit")
        result = self._run_pip_audit(lock)
        if result.error is None:
            with self._lock:
                self._scans[key] = result
        return result

    def _run_pip_audit(self, lock: str) -> ScanResult:
        if importlib.util.find_spec("pip_audit") is None:
            return ScanResult(error=f"pip-audit is not installed: {INSTALL_HINT}")
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.TemporaryDirectory(prefix="algora-audit-", dir=self.root) as work:
            folder = Path(work)
            (folder / "requirements.txt").write_text(lock, encoding="utf-8")
            argv = [
                sys.executable,
                "-m",
                "pip_audit",
                "--requirement",
                "requirements.txt",
                "--disable-pip",  # the lock is complete and hashed: resolve nothing
                "--require-hashes",
                "--vulnerability-service",
                "pypi",
                "--format",
                "json",
                "--aliases",
                "on",
                "--desc",
                "on",
                "--progress-spinner",
                "off",
                "--cache-dir",
                str(self.root / "http-cache"),
                "--output",
                "report.json",
            ]
            env = {name: os.environ[name] for name in _PASSTHROUGH if name in os.environ}
            env.setdefault("PATH", os.defpath)
            env["HOME"] = str(folder)
            try:
                completed = subprocess.run(
                    argv,
                    cwd=folder,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=self.timeout,
                    check=False,
                    umask=0o077,  # its HTTP cache is the owner's only
                )
            except subprocess.TimeoutExpired:
                return ScanResult(error=f"pip-audit timed out after {self.timeout:g}s")
            except OSError as exc:
                return ScanResult(error=f"cannot run pip-audit: {exc.strerror or exc}")
            report = folder / "report.json"
            # pip-audit exits 1 both when it found vulnerabilities and when it failed.
            if report.is_file():
                try:
                    return parse_pip_audit(report.read_text(encoding="utf-8"))
                except (ValueError, KeyError, TypeError) as exc:
                    logger.warning("unreadable pip-audit report: %s", exc)
            return ScanResult(error=_reason(completed.stderr, completed.returncode))

    # ---------------------------------------------------------------------------------------
    # SBOM

    def sbom(self, lock: str, env_hash: str, python_version: str) -> Path | None:
        """The CycloneDX JSON SBOM file of the Python environment ``env_hash``."""
        return self.sbom_file(env_hash, lambda: cyclonedx_json(lock, env_hash, python_version))

    def sbom_file(self, env_hash: str, document: Callable[[], str]) -> Path | None:
        """The SBOM file of the environment ``env_hash``, written once from ``document()``;
        None where cyclonedx-python-lib is not installed."""
        if importlib.util.find_spec("cyclonedx") is None:
            return None
        folder = self.root / "sbom"
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder.mkdir(exist_ok=True, mode=0o700)
        path = folder / f"{env_hash}.cdx.json"
        if path.is_file():
            return path
        text = document()
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".sbom-")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        Path(tmp_name).replace(path)
        return path


def cyclonedx_json(lock: str, env_hash: str, python_version: str) -> str:
    """A CycloneDX 1.6 JSON document describing the environment built from ``lock``."""
    from cyclonedx.model import HashAlgorithm, HashType
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    root, bom = environment_bom(
        env_hash, f"Python {python_version} virtual environment built by uv from a lock"
    )
    algorithms = {
        "sha256": HashAlgorithm.SHA_256,
        "sha384": HashAlgorithm.SHA_384,
        "sha512": HashAlgorithm.SHA_512,
    }
    packages = _lock_entries(lock)
    components: dict[str, Component] = {}
    for name, (version, hashes, _via) in packages.items():
        purl = PackageURL(type="pypi", name=name, version=version)
        component = Component(
            name=name,
            version=version,
            type=ComponentType.LIBRARY,
            purl=purl,
            bom_ref=purl.to_string(),
            hashes=[
                HashType(alg=algorithms[alg], content=digest)
                for alg, digest in hashes
                if alg in algorithms
            ],
        )
        components[name] = component
        bom.components.add(component)
    direct = []
    for name, (_version, _hashes, via) in packages.items():
        parents = [canonicalize_name(p) for p in via if not p.startswith("-")]
        if any(p.startswith("-") for p in via) or not via:
            direct.append(components[name])
        for parent in parents:
            if parent in components:
                bom.register_dependency(components[parent], [components[name]])
    bom.register_dependency(root, direct)
    for component in components.values():
        bom.register_dependency(component, [])
    return JsonV1Dot6(bom).output_as_string(indent=2)


def environment_bom(env_hash: str, description: str) -> tuple[Any, Any]:
    """An empty CycloneDX BOM of the environment ``env_hash``, and its root component."""
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType

    root = Component(
        name=f"algora-environment-{env_hash[:12]}",
        version=env_hash,
        type=ComponentType.APPLICATION,
        bom_ref="algora-environment",
        description=description,
    )
    bom = Bom(
        serial_number=uuid.uuid5(uuid.NAMESPACE_URL, f"algora-environment:{env_hash}"),
        metadata=BomMetaData(component=root),
    )
    return root, bom


def _lock_entries(lock: str) -> dict[str, tuple[str, list[tuple[str, str]], list[str]]]:
    """name -> (version, [(algorithm, digest)], [what it is required via]) from a uv lock."""
    entries: dict[str, tuple[str, list[tuple[str, str]], list[str]]] = {}
    current: str | None = None
    in_via = False
    for raw in lock.splitlines():
        stripped = raw.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            body = stripped[1:].strip()
            if current is None:
                continue
            if body.startswith("via"):
                rest = body[3:].strip()
                in_via = not rest
                if rest:
                    entries[current][2].append(rest)
            elif in_via and body:
                entries[current][2].append(body)
            continue
        in_via = False
        match = _PIN.match(stripped)
        if match and not raw[:1].isspace():
            current = str(canonicalize_name(match.group(1)))
            entries[current] = (match.group(2), [], [])
        if current is not None:
            entries[current][1].extend(
                (alg.lower(), digest.lower()) for alg, digest in _HASH.findall(stripped)
            )
    return entries


def _reason(stderr: str, code: int) -> str:
    lines = [line for line in stderr.splitlines() if line.strip() and "WARNING" not in line]
    if any(line.startswith("Traceback") for line in lines):
        lines = lines[-1:]  # an uncaught exception: its last line is the reason
    reason = "\n".join(lines[-6:]).strip() or f"pip-audit exited with status {code}"
    return reason[-_ERROR_CHARS:]
