"""A name that ends in a newline is not the name without it.

Python's ``$`` also matches before a final newline, so ``re.match(r"^[a-z]+$", "acme\\n")``
succeeds; every name check must refuse it, or ``acme\\n`` could pose as ``acme`` in listings
and the audit log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from algora.auth.scopes import parse_scope
from algora.errors import AlgoraError
from algora.modelfolder.manifest import NAME_PATTERN
from algora.registry.secrets import check_env_name
from algora.registry.specs import is_alias_name
from algora.settings import BUCKET_PATTERN
from algora.store.collections import check_collection
from algora.store.connectors import check_bucket


def _refuses(check: Callable[[str], Any], name: str) -> bool:
    try:
        result = check(name)
    except (AlgoraError, ValueError):
        return True
    return result is False or result is None


@pytest.mark.parametrize(
    ("check", "good"),
    [
        (check_collection, "coll"),
        (lambda n: check_env_name(n) or True, "MY_SECRET"),
        (check_bucket, "bucket"),
        (parse_scope, "call:acme/*"),
        (lambda n: NAME_PATTERN.match(n), "acme"),
        (lambda n: BUCKET_PATTERN.match(n), "bucket"),
        (lambda n: is_alias_name(n) or None, "production"),
    ],
)
def test_a_trailing_newline_is_refused(check: Callable[[str], Any], good: str) -> None:
    assert not _refuses(check, good)
    assert _refuses(check, good + "\n")
