"""Token buckets per key, and per key and model: a caller past its own limit gets 429.

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens a second; each admitted
call takes one. Buckets are refilled lazily from a monotonic clock when they are checked, so
a check is O(1) and nothing runs in the background. Memory is bounded: a bucket that has
refilled completely carries no information and is dropped (oldest first, a little on every
check), and past ``max_buckets`` the least recently used bucket goes even when not full,
which can only favour its caller.

The limits themselves are resolved when a key is authenticated and travel in the cached
:class:`~algora.auth.principals.Caller` (:class:`KeyLimits`), so resolving them never reads the
database. Where the buckets live is a :class:`Buckets`: :class:`MemoryBuckets` in this process
(the embedded default: with several gateways behind a load balancer, each one then enforces the
limit on the calls it receives), or ``algora.auth.shared_buckets`` in the registry, shared by
every gateway on it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from algora.errors import RateLimited

__all__ = [
    "KEY_SCOPE",
    "Buckets",
    "KeyLimits",
    "Limit",
    "MemoryBuckets",
    "ModelLimit",
    "RateLimiter",
]

KEY_SCOPE = ""
"""The scope of a key's own bucket; its per-model buckets' scopes are their patterns."""
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


class Buckets(Protocol):
    """Where token buckets live, keyed by (key id, scope)."""

    def take(self, key_id: str, claims: Sequence[tuple[str, Limit]]) -> tuple[float, ...]:
        """Take one token from each bucket ``claims`` names (a scope and its limit), all or
        none. Returns each bucket's wait in seconds until a token is there: all zero when the
        tokens were taken; otherwise none was taken."""
        ...

    def __len__(self) -> int:
        """How many buckets this process holds in memory."""
        ...


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


class MemoryBuckets:
    """Token buckets in this process's memory, bounded (see the module's docstring)."""

    def __init__(
        self, *, max_buckets: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_buckets < 2:
            raise ValueError("max_buckets must be at least 2")
        self._max = max_buckets
        self._clock = clock
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key_id: str, claims: Sequence[tuple[str, Limit]]) -> tuple[float, ...]:
        now = self._clock()
        with self._lock:
            buckets = [self._bucket((key_id, scope), limit, now) for scope, limit in claims]
            waits = tuple(bucket.wait() for bucket in buckets)
            if not any(waits):
                for bucket in buckets:
                    bucket.tokens -= 1.0
                self._sweep(now)
        return waits

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


class RateLimiter:
    """A key's limits resolved to buckets (by default :class:`MemoryBuckets`) and checked."""

    def __init__(
        self,
        default: Limit | None = None,
        *,
        max_buckets: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        buckets: Buckets | None = None,
    ) -> None:
        """``default`` applies to keys that resolve to no limit at all (None: unlimited);
        ``max_buckets`` and ``clock`` are those of the :class:`MemoryBuckets` made when no
        ``buckets`` are given."""
        self._default = default
        if buckets is None:
            buckets = MemoryBuckets(max_buckets=max_buckets, clock=clock)
        self._buckets = buckets

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, key_id: str, model_ref: str | None, limits: KeyLimits) -> None:
        """Take a token from the key's bucket and, for a model call, from the bucket of the
        key's limit for that model; raise :class:`RateLimited` (and take none) when either
        is empty. ``model_ref`` is ``owner/name``, or None for other requests. A key with no
        limit at all (and no default) touches no bucket."""
        key_limit = limits.key or self._default
        model_limit = limits.for_model(model_ref) if model_ref is not None else None
        claims: list[tuple[str, Limit]] = []
        if key_limit is not None:
            claims.append((KEY_SCOPE, key_limit))
        if model_limit is not None:
            claims.append((model_limit.pattern, model_limit.limit))
        if not claims:
            return
        waits = self._buckets.take(key_id, claims)
        if not any(waits):
            return
        worst = max(range(len(claims)), key=lambda index: (waits[index], -index))
        scope, limit = claims[worst]
        raise _refusal(key_id, limit, waits[worst], scope or None)


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
