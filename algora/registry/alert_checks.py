"""What alert rules decide without a database: their window, their webhook's URL, whether a
reading breaches a rule, the state it moves a rule to, and the signature of a delivery."""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from algora.errors import InvalidInput

__all__ = [
    "MAX_WINDOW_SECONDS",
    "MIN_WINDOW_SECONDS",
    "Comparison",
    "Rule",
    "State",
    "breached",
    "check_threshold",
    "check_webhook",
    "next_state",
    "parse_window",
    "sign",
    "verify",
    "window_text",
]

Comparison = Literal["above", "below"]
State = Literal["ok", "firing", "resolved"]
MIN_WINDOW_SECONDS = 60
MAX_WINDOW_SECONDS = 24 * 3600
_WINDOW = re.compile(r"^([0-9]{1,5})([smh])\Z")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


@dataclass(frozen=True)
class Rule:
    """What decides a rule's state: breached when its signal's value is ``comparison`` (above
    or below) the ``threshold`` over at least ``min_calls`` calls."""

    comparison: Comparison
    threshold: float
    min_calls: int


def parse_window(text: str) -> int:
    """``90s``, ``5m``, ``24h`` as seconds, from a minute to a day; InvalidInput otherwise."""
    match = _WINDOW.match(text)
    seconds = int(match[1]) * _UNIT_SECONDS[match[2]] if match else 0
    if not MIN_WINDOW_SECONDS <= seconds <= MAX_WINDOW_SECONDS:
        raise InvalidInput(
            f"window '{text[:20]}' is not a duration from 1m to 24h: write it as 5m, 90m or 1h"
        )
    return seconds


def window_text(seconds: int) -> str:
    """The shortest of ``2h``, ``90m``, ``75s`` that says ``seconds``."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def check_webhook(url: str, allowed_hosts: Sequence[str]) -> str:
    """``url`` when it is an http or https URL with a host (among ``allowed_hosts`` when they
    are any); InvalidInput otherwise."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  (a port that is no number raises here)
    except ValueError:
        host, parts = None, None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise InvalidInput(
            f"webhook '{url[:80]}' is not an http:// or https:// URL with a host "
            "(https://hooks.example.com/algora)"
        )
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise InvalidInput("a webhook URL holds no spaces or control characters")
    if allowed_hosts and host.lower() not in {h.lower() for h in allowed_hosts}:
        raise InvalidInput(
            f"webhook host '{host[:80]}' is not one this server sends alerts to: the operator "
            "lists them in ALGORA_WEBHOOK_ALLOWED_HOSTS",
            details={"allowed_hosts": list(allowed_hosts)},
        )
    return url


def check_threshold(value: float) -> float:
    if not math.isfinite(value):
        raise InvalidInput("threshold is a finite number")
    return value


def breached(rule: Rule, value: float | None, count: int) -> bool | None:
    """Whether the reading breaches the rule; None when it cannot say (no value, or fewer
    than ``min_calls`` calls): then the rule keeps its state."""
    if value is None or count < rule.min_calls:
        return None
    return value > rule.threshold if rule.comparison == "above" else value < rule.threshold


def next_state(state: str, breach: bool | None) -> State | None:
    """The state a rule moves to, when the reading changes it: ``firing`` on the move to a
    breach, ``resolved`` on the move back from one; None when it stays (no repeat while
    firing, nothing while quiet or unsure)."""
    if breach is True and state != "firing":
        return "firing"
    if breach is False and state == "firing":
        return "resolved"
    return None


def sign(secret: str, body: bytes) -> str:
    """The ``X-Algora-Signature`` header of ``body``: ``sha256=`` and the hex HMAC-SHA256 of
    the body under the rule's secret."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, body: bytes, header: str) -> bool:
    """Whether ``header`` is the signature of ``body`` (what a receiver checks)."""
    return hmac.compare_digest(sign(secret, body), header)
