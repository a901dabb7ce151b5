"""What alert rules decide without a database: breaches, state moves, windows, URLs and
signatures."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from algora.errors import InvalidInput
from algora.registry.alert_checks import (
    Rule,
    breached,
    check_webhook,
    next_state,
    parse_window,
    sign,
    verify,
    window_text,
)

ABOVE = Rule("above", 0.05, min_calls=5)


def _run(readings: list[tuple[float | None, int]], rule: Rule = ABOVE) -> list[str]:
    """The states a rule moves to over ``readings``, starting quiet."""
    state, moves = "ok", []
    for value, count in readings:
        change = next_state(state, breached(rule, value, count))
        if change is not None:
            state = change
            moves.append(change)
    return moves


def test_a_rule_fires_once_on_the_breach_and_resolves_once_on_the_way_back() -> None:
    readings = [(0.0, 10), (0.5, 10), (0.6, 12), (0.4, 20), (0.01, 30), (0.0, 40), (0.3, 40)]
    assert _run(readings) == ["firing", "resolved", "firing"]


def test_too_few_calls_neither_fire_nor_resolve() -> None:
    assert _run([(1.0, 3), (1.0, 4)]) == []  # one failed call of three does not page
    assert _run([(1.0, 5), (0.0, 2), (None, 0)]) == ["firing"]  # nor does a quiet window resolve
    assert breached(ABOVE, 1.0, 4) is None and breached(ABOVE, 1.0, 5) is True


def test_below_rules_breach_under_their_threshold() -> None:
    rule = Rule("below", 0.9, min_calls=1)
    assert breached(rule, 0.8, 1) is True and breached(rule, 0.95, 1) is False
    assert breached(rule, 0.9, 1) is False  # at the threshold is no breach


def test_windows_are_a_minute_to_a_day() -> None:
    assert [parse_window(w) for w in ("1m", "5m", "90m", "24h", "120s")] == [
        60, 300, 5400, 86400, 120,
    ]  # fmt: skip
    for bad in ("30s", "25h", "5", "5 m", "-5m", "1d", ""):
        with pytest.raises(InvalidInput, match="window"):
            parse_window(bad)
    assert [window_text(s) for s in (300, 3600, 5400, 90)] == ["5m", "1h", "90m", "90s"]


def test_webhooks_are_http_urls_on_allowed_hosts() -> None:
    assert check_webhook("https://hooks.example.com/x", []) == "https://hooks.example.com/x"
    assert check_webhook("http://127.0.0.1:9/h", ["127.0.0.1"])
    for bad in ("ftp://example.com/", "file:///etc/passwd", "javascript:alert(1)", "https://",
                "http://h:port/", "http://a b/", "example.com/hook"):  # fmt: skip
        with pytest.raises(InvalidInput):
            check_webhook(bad, [])
    with pytest.raises(InvalidInput, match="ALGORA_WEBHOOK_ALLOWED_HOSTS"):
        check_webhook("https://evil.example.net/", ["hooks.example.com"])


def test_the_signature_is_the_hex_hmac_sha256_of_the_body() -> None:
    body = b'{"state":"firing"}'
    expected = hmac.new(b"s" * 32, body, hashlib.sha256).hexdigest()
    assert sign("s" * 32, body) == f"sha256={expected}"
    assert verify("s" * 32, body, f"sha256={expected}")
    assert not verify("t" * 32, body, f"sha256={expected}")
    assert not verify("s" * 32, body + b" ", f"sha256={expected}")
