"""What a key may do: scopes, deny by default.

A key carries a list of scope strings. A route declares the one scope it needs (see
``algora.gateway.permissions``); a key without it is refused with 403 before anything is looked
up. Some scopes take a pattern that narrows them to resources::

    call                     call any model the principal may call
    call:acme/*              ... only acme's models (fnmatch-style, on ``owner/name``)
    models:read              list and read models, versions, locks, schemas, lineage, logs
    models:publish           publish new versions
    models:manage            change a model: description, deprecation, visibility, grants
    aliases:write            move aliases, ask for promotions of protected ones
    aliases:approve          approve or reject another principal's promotion requests
    data:read[:coll/*]       read hosted data (optionally only the collections a pattern names)
    data:write[:coll/*]      write hosted data
    keys:manage              create, list, limit and revoke keys (own and managed accounts')
    principals:manage        users, organizations, memberships, service accounts
    audit:read               read, export and verify the audit log
    *                        every scope the principal holds

Scopes only narrow what the principal may do; they never add to it. ``audit:read`` is
privileged: ``*`` covers it only on an admin's key, so it reaches anyone else only as an explicit
scope on a key that an admin (or a key that holds it) created.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

from algora.errors import BadRequest

__all__ = [
    "ALL",
    "PATTERNED",
    "PRIVILEGED",
    "SCOPES",
    "SCOPE_PATTERN",
    "covers",
    "has_scope",
    "parse_scope",
    "validate_scopes",
]

ALL = "*"
SCOPES = (
    "call",
    "models:read",
    "models:publish",
    "models:manage",
    "aliases:write",
    "aliases:approve",
    "data:read",
    "data:write",
    "keys:manage",
    "principals:manage",
    "audit:read",
    "metrics:read",
)
PATTERNED = frozenset({"call", "data:read", "data:write"})
"""Scopes that may be narrowed by a pattern: ``call:owner/name-glob``, ``data:read:coll/*``."""
PRIVILEGED = frozenset({"audit:read", "metrics:read"})
SCOPE_PATTERN = re.compile(r"^[a-z0-9_*?.\-]+(?:/[a-z0-9_*?.\-]+)*\Z")


def parse_scope(scope: str) -> tuple[str, str | None]:
    """(base, pattern or None); raises BadRequest for anything unknown."""
    if scope == ALL:
        return ALL, None
    for base in PATTERNED:
        if scope.startswith(base + ":"):
            pattern = scope[len(base) + 1 :]
            if not SCOPE_PATTERN.match(pattern) or len(pattern) > 200:
                raise BadRequest(f"'{pattern}' in scope '{scope}' is not a valid pattern")
            return base, pattern
    if scope not in SCOPES:
        raise BadRequest(f"unknown scope '{scope}': use one of {', '.join(SCOPES)} or '*'")
    return scope, None


def validate_scopes(scopes: list[str]) -> list[str]:
    """The scopes, checked and without duplicates, in the order given."""
    seen: list[str] = []
    for scope in scopes:
        parse_scope(scope)
        if scope not in seen:
            seen.append(scope)
    return seen


def _grants(held: str, needed: str, resource: str | None, is_admin: bool) -> bool:
    try:
        base, pattern = parse_scope(held)
    except BadRequest:
        return False  # a scope this version does not know grants nothing
    if base == ALL:
        return needed not in PRIVILEGED or is_admin
    if base != needed:
        return False
    if pattern is None:
        return True
    # A patterned scope grants only what a named resource matches.
    return resource is not None and fnmatchcase(resource, pattern)


def has_scope(
    scopes: tuple[str, ...] | list[str],
    needed: str,
    resource: str | None = None,
    *,
    is_admin: bool = False,
) -> bool:
    """True when one of ``scopes`` grants ``needed`` (for ``resource``, when it is patterned).

    Without a resource, a patterned scope (``call:acme/*``) counts: the route lets the request
    in, and the resource check follows once the resource is known.
    """
    if resource is None:
        return any(_grants(s, needed, None, is_admin) or s.startswith(needed + ":") for s in scopes)
    return any(_grants(s, needed, resource, is_admin) for s in scopes)


def covers(held: tuple[str, ...] | list[str], wanted: str, *, is_admin: bool) -> bool:
    """True when a key holding ``held`` may hand ``wanted`` to a new key (never widening)."""
    if wanted == ALL:
        return ALL in held
    base, pattern = parse_scope(wanted)
    for scope in held:
        if scope == wanted:
            return True
        try:
            held_base, held_pattern = parse_scope(scope)
        except BadRequest:
            continue
        if held_base == ALL and (base not in PRIVILEGED or is_admin):
            return True
        if held_base == base and held_pattern is None:
            return True  # an unpatterned scope covers every narrowing of itself
        named = pattern is not None and not any(c in pattern for c in "*?")
        if held_base == base and held_pattern is not None and named:
            assert pattern is not None  # named implies it
            if fnmatchcase(pattern, held_pattern):
                return True  # a single named resource inside the held pattern
    return False
