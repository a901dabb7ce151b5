"""Audit anchors (``ID:HASH``): the row a verify reported, kept outside the database.

Standard library only: the CLI checks an anchor before it asks a gateway (client installs too).
"""

from __future__ import annotations

import re

__all__ = ["ANCHOR_PATTERN", "parse_anchor"]

ANCHOR_PATTERN = re.compile(r"^[1-9][0-9]{0,17}:[0-9a-f]{64}\Z")
"""An anchor as verify prints it (:func:`parse_anchor` also reads surrounding blanks)."""


def parse_anchor(text: str) -> tuple[int, str]:
    """``ID:HASH`` (what an earlier verify reported) as (id, hash), or ValueError."""
    row_id, sep, digest = text.strip().partition(":")
    if not sep or not row_id.isdigit() or int(row_id) < 1 or len(digest) != 64:
        raise ValueError("an anchor is ID:HASH as an earlier verify printed it, e.g. 42:9f3c...")
    if any(c not in "0123456789abcdef" for c in digest):
        raise ValueError("an anchor's hash is 64 lowercase hex digits")
    return int(row_id), digest
