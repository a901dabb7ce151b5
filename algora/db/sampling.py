"""Payload sampling's tables: each model's sampling rule and the index of the samples taken
(the payloads themselves are objects in the store, see ``algora.registry.sampler``). Changed
only through migrations, like :mod:`algora.db.tables`, whose ``Base`` they share (importing
this module registers them in its metadata)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from algora.db.tables import Base, utcnow

__all__ = ["PayloadSample", "SamplingRule"]


class SamplingRule(Base):
    """How a model's calls are sampled: a share of them (``rate``), each input and output cut
    at ``max_bytes``, the JSON fields named in ``redact`` replaced at any depth. No row, or
    ``enabled`` false: none is sampled."""

    __tablename__ = "sampling_rules"

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), primary_key=True)
    enabled: Mapped[bool]
    rate: Mapped[float]
    max_bytes: Mapped[int]
    redact: Mapped[list[Any]]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(255))


class PayloadSample(Base):
    """One sampled call: what is listed of it; its payloads are the store's object ``key``."""

    __tablename__ = "payload_samples"
    __table_args__ = (
        Index("ix_payload_samples_model_time", "model_id", "created_at"),
        Index("ix_payload_samples_model_request", "model_id", "request_id"),
        Index("ix_payload_samples_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))
    request_id: Mapped[str] = mapped_column(String(128))
    alias: Mapped[str] = mapped_column(String(64))
    caller: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    input_type: Mapped[str] = mapped_column(String(16))
    output_type: Mapped[str] = mapped_column(String(16))
    input_bytes: Mapped[int] = mapped_column(BigInteger)
    output_bytes: Mapped[int] = mapped_column(BigInteger)
    truncated: Mapped[bool]
    error_code: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
