"""Hostile names and paths, generated at run time: encodings x separators x depth x targets.

Nothing here is a fixed list of known-bad strings: :func:`traversal_payloads` composes every
way we know to spell "go up one folder" with every separator, several depths and several
targets (a file outside the data folder, the registry, the admin key, a planted canary), and
adds absolute, UNC, drive, NUL and overlong-UTF-8 forms. Each payload is the raw text a client
would put in a URL path segment (already percent-encoded where that is the point).
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterable

SEED = random.SystemRandom().randrange(1 << 32)
"""This run's seed for every sample the security suite draws; printed on failure."""

# How a client can spell "..": literal, percent-encoded, double-encoded, overlong UTF-8,
# full-width and Unicode look-alikes, and the "....//" collapse trick.
_DOTDOT = (
    "..",
    "%2e%2e",
    "%2E%2E",
    ".%2e",
    "%2e.",
    "%252e%252e",
    "%c0%ae%c0%ae",
    "%e0%80%ae%e0%80%ae",
    "%uff0e%uff0e",
    "%ef%bc%8e%ef%bc%8e",
    "....",
    "..%00",
    "..;",
)
# And the separator after it: slash, backslash, encoded, double-encoded, overlong, ";".
_SEPARATOR = (
    "/",
    "\\",
    "%2f",
    "%2F",
    "%5c",
    "%252f",
    "%c0%af",
    "%e0%80%af",
    "%c1%9c",
    ";/",
    "//",
)
_DEPTHS = (1, 2, 4, 8)


def targets(canary_relative: str) -> tuple[str, ...]:
    """What a traversal reaches for: system files, the registry, the key, the canary."""
    return ("etc/passwd", "registry.db", "admin.key", canary_relative)


def _encode_target(target: str, separator: str) -> str:
    return target.replace("/", separator)


def traversal_payloads(canary_relative: str, canary_absolute: str) -> list[str]:
    """Several hundred distinct traversal spellings (deterministic; sample with a seed)."""
    found: dict[str, None] = {}
    aims = targets(canary_relative)
    for (a, dotdot), (b, separator), (c, depth) in itertools.product(
        enumerate(_DOTDOT), enumerate(_SEPARATOR), enumerate(_DEPTHS)
    ):
        # Every (dotdot, separator, depth) once with the targets rotated through, and the
        # canary (beside the data folder) once more one level deeper.
        for target, up in ((aims[(a + b + c) % len(aims)], depth), (canary_relative, depth + 1)):
            found[(dotdot + separator) * up + _encode_target(target, separator)] = None
    for form in _absolute_forms(canary_absolute):
        found[form] = None
    for form in _oddities():
        found[form] = None
    return list(found)


def _absolute_forms(canary_absolute: str) -> Iterable[str]:
    for path in ("/etc/passwd", canary_absolute, "/proc/self/environ"):
        yield path
        yield path.replace("/", "%2f")
        yield path.replace("/", "%252f")
        yield path.replace("/", "\\")
        yield "file://" + path
        yield "file:%2f%2f" + path.replace("/", "%2f")
        yield path + "%00.txt"
    yield from ("\\\\evil.example\\share\\x", "//evil.example/share/x", "%5c%5cevil.example%5cx")
    yield from ("C:\\Windows\\win.ini", "c:/windows/win.ini", "C%3a%5cwindows", "\\\\?\\C:\\x")


def _oddities() -> Iterable[str]:
    yield from ("%00", "a%00b", "x%0a%0dy", "%ff%fe", "%c0%80", "~", "~root", ".", "%2e")
    yield from ("a" * 300, "%" * 3, "%zz", "..\u2215..\u2215etc", "\u2025", "con", "NUL")
    yield from ("a/./b", "a//b", "./", "..", "...", "%2e%2e", "..\\..", "$HOME", "${HOME}")


def sample(items: list[str], count: int, rng: random.Random) -> list[str]:
    return items if count >= len(items) else rng.sample(items, count)


PATH_PARAM = re.compile(r"\{([^}]+)\}")
