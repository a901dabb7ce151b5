"""Payload sampling as a model's managers see it: the model's rule (rate, byte cap, redacted
fields, on or off), the index of its samples and their stored payloads. Every method checks
that the caller may manage the model (its owner, its organization's admins, platform admins);
a model the caller may not read does not exist for it. Samples are taken on the call path by
:class:`~algora.registry.sampler.Sampler`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.principals import Caller
from algora.db.sampling import PayloadSample, SamplingRule
from algora.db.tables import Model, Version, utcnow
from algora.errors import InvalidInput, NotFound
from algora.registry.sampler import Rule, Sampler
from algora.registry.service import Registry
from algora.registry.specs import parse_semver
from algora.store.base import BlobStore

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_RATE",
    "MAX_LIMIT",
    "MAX_SAMPLE_BYTES",
    "SampleView",
    "Sampling",
    "SamplingView",
    "StoredSample",
]

DEFAULT_RATE = 0.01
DEFAULT_MAX_BYTES = 65536
MAX_SAMPLE_BYTES = 16 * 1024 * 1024
"""The largest byte cap a rule may set, per input and per output."""
MAX_REDACTED = 64
MAX_LIMIT = 1000


@dataclass(frozen=True)
class SamplingView:
    model: str
    enabled: bool
    rate: float
    max_bytes: int
    redact: tuple[str, ...]
    updated_at: datetime | None
    updated_by: str | None


@dataclass(frozen=True)
class SampleView:
    request_id: str
    version: str
    alias: str | None
    caller: str
    created_at: datetime
    input_type: str
    output_type: str | None
    input_bytes: int
    output_bytes: int
    truncated: bool
    error_code: str | None


@dataclass(frozen=True)
class StoredSample:
    sample: SampleView
    input: dict[str, Any]
    output: dict[str, Any] | None


class Sampling:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        registry: Registry,
        store: BlobStore,
        sampler: Sampler,
    ) -> None:
        self._sessions = sessions
        self._registry = registry
        self._store = store
        self._sampler = sampler

    def _managed(self, session: Session, caller: Caller, owner: str, name: str) -> Model:
        return self._registry.require_model(session, caller, owner, name, "manage")

    def rule(self, caller: Caller, owner: str, name: str) -> SamplingView:
        """The model's rule; a model without one (never set, or removed) is a 404, as a
        removed resource is."""
        with self._sessions() as session:
            model = self._managed(session, caller, owner, name)
            row = session.get(SamplingRule, model.id)
            if row is None:
                raise NotFound(
                    f"'{owner}/{name}' has no sampling rule: its calls are not sampled; set one "
                    "with PUT .../sampling (algora sampling set)",
                    details={"sampling": "off"},
                )
            return _view(model, row)

    def set_rule(
        self,
        caller: Caller,
        owner: str,
        name: str,
        rate: float,
        max_bytes: int,
        redact: Sequence[str],
        enabled: bool,
    ) -> SamplingView:
        """Create or replace the model's rule; this gateway applies it at once, the others
        within seconds."""
        _check(rate, max_bytes, redact)
        names = sorted(set(redact))
        with self._sessions() as session:
            model = self._managed(session, caller, owner, name)
            row = session.get(SamplingRule, model.id)
            if row is None:
                row = SamplingRule(model_id=model.id)
                session.add(row)
            row.enabled, row.rate, row.max_bytes, row.redact = enabled, rate, max_bytes, names
            row.updated_at, row.updated_by = utcnow(), caller.name[:255]
            session.commit()
            view = _view(model, row)
        applied = Rule(rate, max_bytes, frozenset(names)) if enabled else None
        self._sampler.set_rule(model.id, applied)
        return view

    def remove_rule(self, caller: Caller, owner: str, name: str) -> None:
        """Stop sampling the model (the samples taken stay until they expire)."""
        with self._sessions() as session:
            model = self._managed(session, caller, owner, name)
            row = session.get(SamplingRule, model.id)
            if row is not None:
                session.delete(row)
                session.commit()
        self._sampler.set_rule(model.id, None)

    def samples(
        self,
        caller: Caller,
        owner: str,
        name: str,
        since: datetime | None,
        until: datetime | None,
        version: str | None,
        limit: int,
    ) -> list[SampleView]:
        """The model's samples in the window, newest first."""
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"limit is from 1 to {MAX_LIMIT}")
        with self._sessions() as session:
            model = self._managed(session, caller, owner, name)
            query = (
                select(PayloadSample, Version)
                .join(Version, Version.id == PayloadSample.version_id)
                .where(PayloadSample.model_id == model.id)
            )
            if since is not None:
                query = query.where(PayloadSample.created_at >= since)
            if until is not None:
                query = query.where(PayloadSample.created_at < until)
            if version:
                wanted = parse_semver(version)
                query = query.where(
                    Version.major == wanted.major,
                    Version.minor == wanted.minor,
                    Version.patch == wanted.patch,
                )
            query = query.order_by(PayloadSample.created_at.desc(), PayloadSample.id.desc())
            found = session.execute(query.limit(limit)).all()
            return [_sample(row, version_row.semver) for row, version_row in found]

    def sample(self, caller: Caller, owner: str, name: str, request_id: str) -> StoredSample:
        """The newest sample of the call ``request_id``, with its stored payloads."""
        with self._sessions() as session:
            model = self._managed(session, caller, owner, name)
            found = session.execute(
                select(PayloadSample, Version)
                .join(Version, Version.id == PayloadSample.version_id)
                .where(PayloadSample.model_id == model.id, PayloadSample.request_id == request_id)
                .order_by(PayloadSample.id.desc())
                .limit(1)
            ).first()
            if found is None:
                raise NotFound(f"no sample of call '{request_id[:128]}' of '{owner}/{name}'")
            view = _sample(found[0], found[1].semver)
            key = found[0].key
        stored = json.loads(self._store.get_object(key))
        return StoredSample(view, stored["input"], stored["output"])


def _check(rate: float, max_bytes: int, redact: Sequence[str]) -> None:
    if not 0 < rate <= 1:
        raise InvalidInput("rate is a share of the calls: more than 0, at most 1")
    if not 1 <= max_bytes <= MAX_SAMPLE_BYTES:
        raise InvalidInput(f"max_bytes is from 1 to {MAX_SAMPLE_BYTES}")
    if len(redact) > MAX_REDACTED or any(not 1 <= len(n) <= 128 for n in redact):
        raise InvalidInput(f"redact names at most {MAX_REDACTED} fields of 1 to 128 characters")


def _view(model: Model, row: SamplingRule | None) -> SamplingView:
    name = f"{model.owner.name}/{model.name}"
    if row is None:
        return SamplingView(name, False, DEFAULT_RATE, DEFAULT_MAX_BYTES, (), None, None)
    return SamplingView(
        name, row.enabled, row.rate, row.max_bytes, tuple(row.redact), row.updated_at,
        row.updated_by,
    )  # fmt: skip


def _sample(row: PayloadSample, semver: str) -> SampleView:
    return SampleView(
        row.request_id, semver, row.alias or None, row.caller, row.created_at, row.input_type,
        row.output_type or None, row.input_bytes, row.output_bytes, row.truncated,
        row.error_code or None,
    )  # fmt: skip
