"""Semantic versions and the version specs callers use to name them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from algora.errors import InvalidVersionSpec

__all__ = [
    "ALIAS_PATTERN",
    "HASH_PATTERN",
    "PARTIAL_PATTERN",
    "SEMVER_PATTERN",
    "VERSIONISH_PATTERN",
    "Bump",
    "SemVer",
    "VersionSpec",
    "is_alias_name",
    "next_version",
    "parse_semver",
    "parse_spec",
]

Bump = Literal["major", "minor", "patch"]

SEMVER_PATTERN = re.compile(r"^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\Z")
PARTIAL_PATTERN = re.compile(r"^(0|[1-9]\d{0,8})(?:\.(0|[1-9]\d{0,8}))?(?:\.x)?\Z")
HASH_PATTERN = re.compile(r"^[0-9a-f]{12,64}\Z")
ALIAS_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}\Z")
VERSIONISH_PATTERN = re.compile(r"^v\d")  # v1, v2-beta: they look like versions; refused as aliases


@dataclass(frozen=True, order=True)
class SemVer:
    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def parse_semver(text: str) -> SemVer:
    match = SEMVER_PATTERN.match(text.strip())
    if match is None:
        raise InvalidVersionSpec(
            f"'{text}' is not a version: use MAJOR.MINOR.PATCH, for example 1.0.0"
        )
    return SemVer(*(int(part) for part in match.groups()))


def next_version(existing: Iterable[SemVer], bump: Bump) -> SemVer:
    """The next version after the highest existing one; 1.0.0 for a model's first."""
    highest = max(existing, default=None)
    if highest is None:
        return SemVer(1, 0, 0) if bump != "patch" else SemVer(0, 0, 1)
    if bump == "major":
        return SemVer(highest.major + 1, 0, 0)
    if bump == "minor":
        return SemVer(highest.major, highest.minor + 1, 0)
    return SemVer(highest.major, highest.minor, highest.patch + 1)


@dataclass(frozen=True)
class VersionSpec:
    """``latest``, an exact version, a ``MAJOR[.MINOR].x`` range, a content-hash prefix or an
    alias (``production``: whatever version the alias points at, see
    :mod:`algora.registry.aliases`).

    ``latest_private`` (Algorithmia's ``latestPrivate``: the latest build, published or not) is
    the highest ready version, deprecated ones included, and only for callers who may manage
    the model: see :meth:`algora.registry.service.Registry.resolve`.
    """

    kind: Literal["latest", "latest_private", "exact", "range", "hash", "alias"]
    major: int | None = None
    minor: int | None = None
    patch: int | None = None
    hash_prefix: str | None = None
    alias: str | None = None

    @property
    def right(self) -> Literal["call", "manage"]:
        """The right on the model a caller needs to name versions with this spec."""
        return "manage" if self.kind == "latest_private" else "call"

    def matches(self, version: SemVer) -> bool:
        """Whether a version number matches (an alias or a hash names versions otherwise)."""
        if self.kind in ("alias", "hash"):
            return False
        if self.kind in ("latest", "latest_private"):
            return True
        if self.major is not None and version.major != self.major:
            return False
        if self.minor is not None and version.minor != self.minor:
            return False
        return self.patch is None or version.patch == self.patch

    def __str__(self) -> str:
        if self.kind == "latest":
            return "latest"
        if self.kind == "latest_private":
            return "latestPrivate"
        if self.kind == "hash":
            return str(self.hash_prefix)
        if self.kind == "alias":
            return str(self.alias)
        parts = [str(p) for p in (self.major, self.minor, self.patch) if p is not None]
        return ".".join(parts) + (".x" if self.kind == "range" else "")


def parse_spec(text: str | None) -> VersionSpec:
    """Parse ``1.2.3``, ``1.2``/``1.2.x``, ``1``/``1.x``, ``latest``, ``latestPrivate``, a
    content hash or an alias name.

    Version forms are tried first, so a name that reads as one of them is never an alias:
    ``is_alias_name`` refuses such names when an alias is set.
    """
    spec = (text or "latest").strip()
    if spec in ("latest", ""):
        return VersionSpec("latest")
    if spec in ("latestPrivate", "latestprivate"):
        return VersionSpec("latest_private")
    if SEMVER_PATTERN.match(spec):
        exact = parse_semver(spec)
        return VersionSpec("exact", exact.major, exact.minor, exact.patch)
    match = PARTIAL_PATTERN.match(spec)
    if match is not None:
        major, minor = match.groups()
        return VersionSpec("range", int(major), int(minor) if minor is not None else None)
    if HASH_PATTERN.match(spec):
        return VersionSpec("hash", hash_prefix=spec)
    if ALIAS_PATTERN.match(spec) and not VERSIONISH_PATTERN.match(spec):
        return VersionSpec("alias", alias=spec)
    raise InvalidVersionSpec(
        f"'{text}' is not a version spec: use 1.2.3, 1.2.x, 1.x, latest, latestPrivate, a "
        "content hash or an alias"
    )


def is_alias_name(text: str) -> bool:
    """Whether ``text`` may name an alias: 1-32 lowercase letters, digits, '-' or '_', starting
    with a letter, and not readable as any other version spec (``latest``, ``1.x``, a content
    hash such as ``deadbeefcafe``, ``v1``)."""
    try:
        return parse_spec(text).kind == "alias" and text == text.strip()
    except InvalidVersionSpec:
        return False
