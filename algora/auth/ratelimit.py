"""Token buckets per key, and per key and model: a caller past its own limit gets 429.

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens a second; each admitted
call takes one. Buckets are refilled lazily from a monotonic clock when they are checked, so
a check is O(1) and nothing runs in the background. Memory is bounded: a bucket that has
refilled completely carries no information and is dropped (oldest first, a little on every
check), and past ``max_buckets`` the least recently used bucket goes even when not full,
which can only favour its caller.

The limits themselves are resolved when a key is authenticated and travel in the cached
:class:`~algora.auth.principals.Caller` (:class:`KeyLimits`), so a check never reads the
database. Buckets live in this process: with several gateways behind a load balancer, each
one enforces the limit on the calls it receives.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from algora.errors import RateLimited

__all__ = ["KeyLimits", "Limit", "ModelLimit", "RateLimiter"]

_KEY_SCOPE = ""  # the bucket of the key's own limit; model buckets are keyed by pattern
_SWEEP_PER_CHECK = 2


@dataclass(frozen=True, slots=True)
class Limit:
    """``rate`` calls a second on average, ``burst`` at once after a quiet spell."""

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"a rate limit must be a positive number of calls/s, not {self.rate}")
        if self.burst < 1:
            raise ValueError(f"a burst must be at least 1, not {self.burst}")

    @classmethod
    def of(cls, rate: float | None, burst: int | None) -> Limit | None:
        """The limit stored as two nullable columns: None without a rate (no limit at this
        level); a missing burst allows one second's worth of calls at once."""
        if rate is None:
            return None
        return cls(float(rate), burst if burst is not None else max(1, math.ceil(rate)))


@dataclass(frozen=True, slots=True)
class ModelLimit:
    """A key's limit for the models ``pattern`` names: ``owner/name`` or ``owner/*``."""

    pattern: str
    limit: Limit


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """What one key may do: its resolved limit (its own, else its principal's default, else
    its organization's; None: the server default) and its per-model limits."""

    key: Limit | None = None
    models: tuple[ModelLimit, ...] = ()

    def for_model(self, model_ref: str) -> ModelLimit | None:
        """The most specific per-model limit for ``owner/name``: exact, then ``owner/*``."""
        if not self.models:
            return None
        owner = model_ref.split("/", 1)[0]
        wildcard = None
        for entry in self.models:
            if entry.pattern == model_ref:
                return entry
            if entry.pattern == f"{owner}/*":
                wildcard = entry
        return wildcard


UNLIMITED = KeyLimits()


class _Bucket:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, limit: Limit, now: float) -> None:
        self.rate = limit.rate
        self.burst = float(limit.burst)
        self.tokens = self.burst
        self.stamp = now

    def refill(self, limit: Limit, now: float) -> None:
        if limit.rate != self.rate or limit.burst != self.burst:  # the limit was changed
            self.rate, self.burst = limit.rate, float(limit.burst)
        elapsed = max(0.0, now - self.stamp)
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.stamp = now

    def wait(self) -> float:
        """Seconds until one token is there (0 when one is there now)."""
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate

    def full_by(self, now: float) -> bool:
        return self.tokens + max(0.0, now - self.stamp) * self.rate >= self.burst


class RateLimiter:
    """In-memory token buckets, keyed by (key id, scope)."""

    def __init__(
        self,
        default: Limit | None = None,
        *,
        max_buckets: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``default`` applies to keys that resolve to no limit at all (None: unlimited)."""
        if max_buckets < 2:
            raise ValueError("max_buckets must be at least 2")
        self._default = default
        self._max = max_buckets
        self._clock = clock
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, key_id: str, model_ref: str | None, limits: KeyLimits) -> None:
        """Take a token from the key's bucket and, for a model call, from the bucket of the
        key's limit for that model; raise :class:`RateLimited` (and take none) when either
        is empty. ``model_ref`` is ``owner/name``, or None for other requests."""
        key_limit = limits.key or self._default
        model_limit = limits.for_model(model_ref) if model_ref is not None else None
        if key_limit is None and model_limit is None:
            return
        now = self._clock()
        with self._lock:
            key_bucket = self._bucket((key_id, _KEY_SCOPE), key_limit, now) if key_limit else None
            model_bucket = (
                self._bucket((key_id, model_limit.pattern), model_limit.limit, now)
                if model_limit is not None
                else None
            )
            key_wait = key_bucket.wait() if key_bucket is not None else 0.0
            model_wait = model_bucket.wait() if model_bucket is not None else 0.0
            if key_wait == 0.0 and model_wait == 0.0:
                if key_bucket is not None:
                    key_bucket.tokens -= 1.0
                if model_bucket is not None:
                    model_bucket.tokens -= 1.0
                self._sweep(now)
                return
        if key_limit is not None and key_wait >= model_wait:
            raise _refusal(key_id, key_limit, key_wait, None)
        assert model_limit is not None  # the refusal came from the model's bucket
        raise _refusal(key_id, model_limit.limit, model_wait, model_limit.pattern)

    def _bucket(self, scope: tuple[str, str], limit: Limit, now: float) -> _Bucket:
        bucket = self._buckets.get(scope)
        if bucket is None:
            bucket = self._buckets[scope] = _Bucket(limit, now)
        else:
            bucket.refill(limit, now)
            self._buckets.move_to_end(scope)
        return bucket

    def _sweep(self, now: float) -> None:
        """Drop a few idle (refilled) buckets from the least recently used end; past the
        bound, drop the least recently used whatever its state."""
        buckets = self._buckets
        for _ in range(_SWEEP_PER_CHECK):
            if not buckets:
                return
            scope, oldest = next(iter(buckets.items()))
            if not oldest.full_by(now):
                break
            del buckets[scope]
        while len(buckets) > self._max:
            buckets.popitem(last=False)


_LONGEST_WAIT = 365 * 86400.0
"""A wait past a year is said as a year: a rate as small as 5e-324 calls/s would otherwise
give an infinite wait, which JSON and Retry-After cannot carry."""


def _refusal(key_id: str, limit: Limit, wait: float, pattern: str | None) -> RateLimited:
    wait = min(wait, _LONGEST_WAIT)
    where = f" for '{pattern}'" if pattern is not None else ""
    return RateLimited(
        f"key '{key_id}' is limited to {limit.rate:g} calls/s (burst {limit.burst}){where}: "
        f"retry in {wait:.2f} s",
        details={
            "retry_after": round(wait, 3),
            "rate_per_second": limit.rate,
            "burst": limit.burst,
            "scope": pattern or "key",
        },
    )
