"""What the gateways on one registry keep there besides the registry itself: the cache epoch,
shared rate-limit buckets, web sessions, per-minute call statistics, the catalog's search
index and the gateways' leases. Changed only through migrations, like :mod:`algora.db.tables`,
whose ``Base`` they share (importing this module registers them in its metadata)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from algora.db.tables import ApiKey, Base, utcnow

__all__ = [
    "CacheEpoch",
    "CallStats",
    "DriftCount",
    "DriftProfile",
    "GatewayLease",
    "ModelReport",
    "ModelSearchDocument",
    "RateBucket",
    "UsageDay",
    "WebSession",
]


class CacheEpoch(Base):
    """One row whose ``epoch`` a gateway increments when it changes what gateways cache (keys,
    grants, versions, aliases): every gateway on the registry watches it and drops its caches
    when it moves (see ``algora.gateway.changes``)."""

    __tablename__ = "cache_epoch"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger)


class CallStats(Base):
    """One version's calls in one minute (UTC): counts, latency and sizes, added to by every
    gateway (see ``algora.registry.rollups``). The ``le_*`` columns count the calls answered
    within that bound (and above the one before), so percentiles can be estimated."""

    __tablename__ = "call_stats"
    __table_args__ = (Index("ix_call_stats_model_minute", "model_id", "minute"),)

    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), primary_key=True)
    minute: Mapped[datetime] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    calls: Mapped[int] = mapped_column(BigInteger)
    model_errors: Mapped[int] = mapped_column(BigInteger)
    timeouts: Mapped[int] = mapped_column(BigInteger)
    unavailable: Mapped[int] = mapped_column(BigInteger)
    other_errors: Mapped[int] = mapped_column(BigInteger)
    latency_sum: Mapped[float]
    """Seconds, summed over the minute's calls."""
    bytes_in: Mapped[int] = mapped_column(BigInteger)
    bytes_out: Mapped[int] = mapped_column(BigInteger)
    le_1ms: Mapped[int] = mapped_column(BigInteger)
    le_2_5ms: Mapped[int] = mapped_column(BigInteger)
    le_5ms: Mapped[int] = mapped_column(BigInteger)
    le_10ms: Mapped[int] = mapped_column(BigInteger)
    le_25ms: Mapped[int] = mapped_column(BigInteger)
    le_50ms: Mapped[int] = mapped_column(BigInteger)
    le_100ms: Mapped[int] = mapped_column(BigInteger)
    le_250ms: Mapped[int] = mapped_column(BigInteger)
    le_500ms: Mapped[int] = mapped_column(BigInteger)
    le_1s: Mapped[int] = mapped_column(BigInteger)
    le_2_5s: Mapped[int] = mapped_column(BigInteger)
    le_5s: Mapped[int] = mapped_column(BigInteger)
    le_10s: Mapped[int] = mapped_column(BigInteger)
    le_30s: Mapped[int] = mapped_column(BigInteger)
    le_inf: Mapped[int] = mapped_column(BigInteger)


class RateBucket(Base):
    """A key's token bucket shared by every gateway on the registry (the ``database`` rate-limit
    backend, ``algora.auth.shared_buckets``): ``scope`` is empty for the key's own limit, else
    the pattern of its limit for some models. The limit itself is not stored: each check brings
    the key's current one."""

    __tablename__ = "rate_buckets"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    scope: Mapped[str] = mapped_column(String(129), primary_key=True)
    tokens: Mapped[float]
    stamp: Mapped[float]
    """When ``tokens`` was last refilled, in seconds since the epoch (the gateways' clocks)."""
    full_at: Mapped[float | None] = mapped_column(default=None)
    """When the bucket is full again if nobody takes from it: past it, the row is pruned (a
    missing bucket is a full one)."""


class WebSession(Base):
    """A web UI session: signed in with an API key, it acts with that key's rights until it
    expires, the key is revoked, or its holder signs out. Only the SHA-256 of its token is
    stored (see ``algora.auth.sessions``)."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)

    api_key: Mapped[ApiKey] = relationship(lazy="joined")


class ModelSearchDocument(Base):
    """What the catalog's search reads of a model beyond its row: its README, its schemas'
    field names and its runtime, taken from its newest ready version (or, with none, its newest)
    (see ``algora.registry.search``).

    Derived and rebuilt when ``signature`` no longer matches the model, so no foreign keys: a
    row never holds anything back."""

    __tablename__ = "model_search"

    model_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    signature: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int | None] = mapped_column(default=None)
    readme: Mapped[str] = mapped_column(Text, default="")
    fields: Mapped[str] = mapped_column(Text, default="")
    runtime: Mapped[str] = mapped_column(String(32), default="")
    """What serves the version: ``python``, ``node``, or a saved model's format."""


class GatewayLease(Base):
    """One running gateway: renewed while it lives, so that the others can tell a build it runs
    from one that a gateway which died left behind (see ``algora.registry.leases``)."""

    __tablename__ = "gateway_leases"

    instance: Mapped[str] = mapped_column(String(32), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    renewed_at: Mapped[datetime] = mapped_column(default=utcnow)


class UsageDay(Base):
    """One key's calls of one model on one day (UTC), added to by every gateway (see
    ``algora.registry.usage``): what is charged back to the teams that call. ``org_id`` is the
    key's organization (see :func:`algora.auth.principals.organization_of`)."""

    __tablename__ = "usage_daily"
    __table_args__ = (Index("ix_usage_daily_org_day", "org_id", "day"),)

    day: Mapped[datetime] = mapped_column(primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), primary_key=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id"))
    org_id: Mapped[int | None] = mapped_column(ForeignKey("principals.id"), default=None)
    calls: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    compute_seconds: Mapped[float]


class ModelReport(Base):
    """What a version's model code reported under one name in one minute (UTC): how many
    values, their sum, least and greatest (see ``algora.registry.reports``)."""

    __tablename__ = "model_reports"
    __table_args__ = (Index("ix_model_reports_model_minute", "model_id", "minute"),)

    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), primary_key=True)
    minute: Mapped[datetime] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    count: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[float]
    minimum: Mapped[float]
    maximum: Mapped[float]


class DriftProfile(Base):
    """A version's drift reference: its features' bins and reference counts as JSON text,
    from a file given at publish (``source`` file) or its first calls (``calls``); see
    ``algora.registry.drift``."""

    __tablename__ = "drift_profiles"

    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    source: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(Integer)
    features: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class DriftCount(Base):
    """How many of a version's rows fell in one bin of one feature in one minute (UTC), added
    to by every gateway; feature ``*`` bin 0 counts the calls."""

    __tablename__ = "drift_counts"

    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), primary_key=True)
    minute: Mapped[datetime] = mapped_column(primary_key=True)
    feature: Mapped[str] = mapped_column(String(80), primary_key=True)
    bin: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    count: Mapped[int] = mapped_column(BigInteger)
