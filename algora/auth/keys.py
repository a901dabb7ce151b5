"""API keys: generated here, shown once, stored only as a SHA-256 hash."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "NewKey",
    "basic_authorization",
    "generate_key",
    "hash_key",
    "keys_match",
    "parse_authorization",
    "parse_authorization_scheme",
]

_ALPHABET = string.ascii_letters + string.digits
KEY_PREFIX = "sim"
KEY_BODY_LENGTH = 43
"""43 base62 characters: 256 bits of secret (log2(62) * 43 = 256.03)."""


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
    """A key shaped like Algorithmia's (``sim`` + letters and digits) so its tooling accepts it;
    its body is 256 bits. Algorithmia's clients send the key as given, whatever its length."""
    body = "".join(secrets.choice(_ALPHABET) for _ in range(KEY_BODY_LENGTH))
    secret = KEY_PREFIX + body
    return NewKey(secret=secret, key_id=secrets.token_hex(8), key_hash=hash_key(secret))


def parse_authorization(header: str | None) -> str | None:
    """The key from ``Simple KEY``, ``Bearer KEY`` or a bare key; None when absent.

    HTTP Basic is no key here: only the git routes take it
    (``algora.protocols.algorithmia.git_http``).
    """
    return parse_authorization_scheme(header)[1]


def parse_authorization_scheme(
    header: str | None,
) -> tuple[Literal["simple", "bearer", "bare", "basic", "none"], str | None]:
    """The scheme (``none`` when no usable key was sent) and the key, as ``parse_authorization``
    (``basic`` for HTTP Basic, with no key: the git routes read it themselves)."""
    if not header:
        return "none", None
    value = header.strip()
    scheme, _, rest = value.partition(" ")
    if rest.strip() and scheme.lower() == "basic":
        return "basic", None
    if rest and scheme.lower() in ("simple", "bearer"):
        secret = rest.strip()
        if not secret:
            return "none", None
        return ("simple" if scheme.lower() == "simple" else "bearer"), secret
    if rest or not value or value.lower() in ("simple", "bearer"):
        return "none", None  # a scheme with no key after it is no key at all
    return "bare", value


def basic_authorization(header: str | None) -> tuple[str | None, bool]:
    """The ``Authorization`` header as the authenticator reads it, and whether it was Basic.

    Basic carries the key as the password (a user name alone is taken as the key too, as tools
    that put a token in the user name do); Basic credentials that are not base64 of UTF-8 text
    are no key at all (never an error). Other schemes are returned as they came.
    """
    if header is None:
        return None, False
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return header, False
    try:
        decoded = base64.b64decode(value.strip().encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # not ASCII, not base64, not UTF-8
        return None, True
    user, _, password = decoded.partition(":")
    secret = password or user
    return (f"Simple {secret}" if secret else None), True
