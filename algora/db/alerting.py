"""Alert rules and their deliveries (see ``algora.registry.alerts``). Changed only through
migrations, like :mod:`algora.db.tables`, whose ``Base`` they share (importing this module
registers them in its metadata)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from algora.db.tables import Base, utcnow

__all__ = ["AlertDelivery", "AlertRule"]


class AlertRule(Base):
    """A rule on one model's signal over a window, its state, and the gateway that evaluates it
    this tick (``claimed_by`` until ``claimed_until``: one gateway a rule a tick). The webhook's
    signing secret is sealed with the server's secrets key (``algora.registry.secrets``)."""

    __tablename__ = "alert_rules"
    __table_args__ = (Index("ix_alert_rules_model", "model_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    signal: Mapped[str] = mapped_column(String(32))
    comparison: Mapped[str] = mapped_column(String(8))
    """``above`` or ``below`` the threshold is a breach."""
    threshold: Mapped[float]
    window_seconds: Mapped[int]
    version: Mapped[str | None] = mapped_column(String(64), default=None)
    alias: Mapped[str | None] = mapped_column(String(64), default=None)
    min_calls: Mapped[int]
    webhook_url: Mapped[str] = mapped_column(String(2048))
    secret_sealed: Mapped[str] = mapped_column(Text, default="")
    secret_key_id: Mapped[str] = mapped_column(String(16), default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("principals.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default="ok")
    """``ok`` (never fired), ``firing`` or ``resolved``."""
    last_value: Mapped[float | None] = mapped_column(default=None)
    last_count: Mapped[int] = mapped_column(default=0)
    evaluated_at: Mapped[datetime | None] = mapped_column(default=None)
    claimed_by: Mapped[str | None] = mapped_column(String(32), default=None)
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)


class AlertDelivery(Base):
    """One change of a rule's state sent to its webhook: the body signed (kept, so that every
    try sends the same bytes), each try's outcome in ``attempts``, and when to try next."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        Index("ix_alert_deliveries_rule", "rule_id"),
        Index("ix_alert_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(40), unique=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rules.id"))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    state: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(default=None)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    """``pending`` (tries left), ``delivered`` or ``failed`` (every try failed)."""
    tries: Mapped[int] = mapped_column(default=0)
    attempts: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)
