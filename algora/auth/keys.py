"""API keys: generated here, shown once, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass

__all__ = ["NewKey", "generate_key", "hash_key", "keys_match", "parse_authorization"]

_ALPHABET = string.ascii_letters + string.digits
KEY_PREFIX = "sim"
KEY_BODY_LENGTH = 25


@dataclass(frozen=True)
class NewKey:
    secret: str
    key_id: str
    key_hash: str


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def keys_match(stored_hash: str, presented: str) -> bool:
    return hmac.compare_digest(stored_hash, hash_key(presented))


def generate_key() -> NewKey:
    """A key shaped like Algorithmia's (``sim`` + 25 characters) so its tooling accepts it."""
    body = "".join(secrets.choice(_ALPHABET) for _ in range(KEY_BODY_LENGTH))
    secret = KEY_PREFIX + body
    return NewKey(secret=secret, key_id=secrets.token_hex(8), key_hash=hash_key(secret))


def parse_authorization(header: str | None) -> str | None:
    """The key from ``Simple KEY``, ``Bearer KEY`` or a bare key; None when absent."""
    if not header:
        return None
    value = header.strip()
    scheme, _, rest = value.partition(" ")
    if rest and scheme.lower() in ("simple", "bearer"):
        value = rest.strip()
    elif rest:
        return None
    return value or None
