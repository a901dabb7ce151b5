"""The dependency policy for a model's requirements.

A model names the projects it needs and nothing else: plain PEP 508 requirements with
optional extras, version specifiers and markers. Every pip option line is refused (index
URLs, find-links, trusted hosts, editables, includes and constraint files), and so are direct
references (``name @ url``), URLs and local paths: the platform alone chooses where packages
come from.
"""

from __future__ import annotations

from packaging.requirements import InvalidRequirement, Requirement

from algora.environments.spec import logical_lines
from algora.errors import InvalidManifest

__all__ = ["parse_requirements"]

_ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip", ".egg")


def parse_requirements(text: str) -> list[str]:
    """The requirements of ``text`` (one per line, ``#`` comments allowed), normalized.

    Raises :class:`~algora.errors.InvalidManifest` naming the first line that is an option,
    a URL, a local path or not a valid PEP 508 requirement.
    """
    return [_check_line(number, line) for number, line in logical_lines(text)]


def _check_line(number: int, line: str) -> str:
    where = f"requirements line {number} ({line!r})"
    if line.startswith("-"):
        raise InvalidManifest(
            f"{where}: option lines are not allowed (the platform chooses the package index; "
            "includes, constraints and editable installs are refused)"
        )
    if "://" in line or line.lower().startswith("file:"):
        raise InvalidManifest(f"{where}: URLs are not allowed, name a project and a version")
    if line.startswith((".", "/", "~")) or "\\" in line:
        raise InvalidManifest(f"{where}: local paths are not allowed")
    try:
        requirement = Requirement(line)
    except InvalidRequirement as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "parse error"
        raise InvalidManifest(f"{where}: not a valid requirement: {reason}") from None
    if requirement.url is not None:
        raise InvalidManifest(f"{where}: direct references (name @ url) are not allowed")
    if "/" in requirement.name or requirement.name.lower().endswith(_ARCHIVE_SUFFIXES):
        raise InvalidManifest(f"{where}: local paths and archive files are not allowed")
    return str(requirement)
