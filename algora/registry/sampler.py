"""Payload sampling on the call path: a share of a model's calls, inputs and outputs, kept in
the store for its managers (see :mod:`algora.registry.sampling` for the rules and reads).

The call path hands every dispatched call to :meth:`Sampler.offer`: for a model that samples
nothing that is one dict lookup; for one that does, a random draw and, when drawn, an append
to a bounded deque (a full queue drops the sample and counts it: ``algora_samples_dropped``).
:meth:`Sampler.run` writes the queue every few seconds in a thread: each sample redacted and
cut (:mod:`algora.registry.sample_payloads`), stored as one object
``samples/<model id>/<date>/<uuid>.json``, and indexed by one row; the same write reloads the
rules (so other gateways' changes arrive within seconds) and, at most once a minute, removes
the samples older than the retention period, objects and rows. Payloads are never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session, sessionmaker

from algora.db.sampling import PayloadSample, SamplingRule
from algora.db.tables import Model, Version
from algora.errors import AlgoraError
from algora.registry.accumulating import FLUSH_SECONDS
from algora.registry.records import Answered
from algora.registry.sample_payloads import stored_payload
from algora.registry.specs import is_alias_name
from algora.store.base import BlobStore
from algora.workers.spec import CallResult

__all__ = ["MAX_PENDING", "Rule", "Sampler"]

logger = logging.getLogger(__name__)

MAX_PENDING = 1000
"""Samples waiting for the writer; one more is dropped (and counted)."""
_PRUNE_SECONDS = 60.0
_PRUNE_BATCH = 500
_draw = random.Random().random  # noqa: S311  (a share of calls, not a secret)


@dataclass(frozen=True)
class Rule:
    rate: float
    max_bytes: int
    redact: frozenset[str]


@dataclass(frozen=True)
class _Pending:
    rule: Rule
    model_id: int
    version_id: int
    request_id: str
    alias: str
    caller: str
    created_at: datetime
    input_type: str
    input: bytes
    output_type: str
    output: bytes | None
    error_code: str


class Sampler:
    """Draws samples on the serving loop; writes, reloads rules and prunes in a thread."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: BlobStore,
        retention_days: float,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self._sessions = sessions
        self._store = store
        self._retention = timedelta(days=retention_days)
        self._max_pending = max_pending
        self._rules: dict[int, Rule] = {}
        self._pending: deque[_Pending] = deque()
        self._pruned = 0.0
        self._writing = threading.Lock()
        self.dropped = 0
        """Samples dropped because the queue was full (``algora_samples_dropped``)."""
        self.stored = 0
        """Samples written (``algora_samples_stored``)."""

    def offer(
        self,
        call: Answered,
        model: Model,
        version: Version,
        request_id: str,
        content_type: str,
        payload: bytes,
        result: CallResult | None,
        failure: BaseException | None,
    ) -> None:
        """Maybe keep this call (on the serving loop): one dict lookup when its model samples
        nothing."""
        rule = self._rules.get(model.id)
        if rule is None or call.shadow_of or (rule.rate < 1.0 and _draw() >= rule.rate):
            return
        if len(self._pending) >= self._max_pending:
            self.dropped += 1
            return
        error = ""
        if failure is not None:
            error = failure.code if isinstance(failure, AlgoraError) else "cancelled"
        self._pending.append(
            _Pending(
                rule, model.id, version.id, request_id[:128],
                call.spec[:64] if call.spec and is_alias_name(call.spec) else "",
                call.caller.name[:255], datetime.now(UTC).replace(tzinfo=None),
                content_type, payload,
                result.content_type if result is not None else "",
                result.payload if result is not None else None, error[:64],
            )
        )  # fmt: skip

    def counts(self) -> tuple[int, int]:
        """Samples stored and dropped so far (for ``GET /metrics``)."""
        return self.stored, self.dropped

    def set_rule(self, model_id: int, rule: Rule | None) -> None:
        """This gateway's rule for the model, at once (the writer reloads all of them)."""
        if rule is None:
            self._rules.pop(model_id, None)
        else:
            self._rules[model_id] = rule

    async def run(self, every: float = FLUSH_SECONDS) -> None:
        """Write, reload and prune every ``every`` seconds until cancelled."""
        while True:
            await self.flush()
            await asyncio.sleep(every)

    async def flush(self) -> None:
        try:
            await asyncio.to_thread(self.write)
        except Exception:
            logger.warning("could not write payload samples; will retry", exc_info=True)

    def write(self) -> None:
        """Store what is pending, reload the rules, prune when due (blocking, one at a time)."""
        with self._writing:
            taken: list[_Pending] = []
            while self._pending:
                try:
                    taken.append(self._pending.popleft())
                except IndexError:
                    break
            if taken:
                self._store_all(taken)
            self._reload()
            if time.monotonic() - self._pruned >= _PRUNE_SECONDS:
                self.prune()

    def _store_all(self, taken: list[_Pending]) -> None:
        rows, keys = [], []
        try:
            for sample in taken:
                key = f"samples/{sample.model_id}/{sample.created_at:%Y-%m-%d}/{uuid.uuid4().hex}"
                document = _document(sample)
                self._store.put_object(key + ".json", json.dumps(document).encode())
                keys.append(key + ".json")
                rows.append(_row(sample, key + ".json", document))
            with self._sessions() as session:
                session.execute(insert(PayloadSample), rows)
                session.commit()
        except Exception:
            for key in keys:
                self._forget_object(key)
            raise
        self.stored += len(rows)

    def _reload(self) -> None:
        with self._sessions() as session:
            found = session.scalars(select(SamplingRule).where(SamplingRule.enabled)).all()
            self._rules = {
                row.model_id: Rule(row.rate, row.max_bytes, frozenset(row.redact)) for row in found
            }

    def prune(self, now: datetime | None = None) -> int:
        """Remove the samples older than the retention period, objects then rows; how many."""
        cutoff = (now or datetime.now(UTC).replace(tzinfo=None)) - self._retention
        removed = 0
        while True:
            with self._sessions() as session:
                old = session.execute(
                    select(PayloadSample.id, PayloadSample.key)
                    .where(PayloadSample.created_at < cutoff)
                    .limit(_PRUNE_BATCH)
                ).all()
                if not old:
                    break
                for _id, key in old:
                    self._forget_object(key)
                session.execute(
                    delete(PayloadSample).where(PayloadSample.id.in_([i for i, _ in old]))
                )
                session.commit()
            removed += len(old)
        self._pruned = time.monotonic()
        return removed

    def _forget_object(self, key: str) -> None:
        try:
            self._store.delete_object(key)
        except Exception:
            logger.warning("could not remove the sample object %s", key, exc_info=True)


def _document(sample: _Pending) -> dict[str, Any]:
    rule = sample.rule
    stored: dict[str, Any] = {
        "input": stored_payload(sample.input_type, sample.input, rule.max_bytes, rule.redact),
        "output": None,
    }
    if sample.output is not None:
        output = stored_payload(sample.output_type, sample.output, rule.max_bytes, rule.redact)
        stored["output"] = output
    return stored


def _row(sample: _Pending, key: str, document: dict[str, Any]) -> dict[str, Any]:
    output = document["output"]
    truncated = document["input"]["truncated"] or bool(output and output["truncated"])
    return {
        "model_id": sample.model_id,
        "version_id": sample.version_id,
        "request_id": sample.request_id,
        "alias": sample.alias,
        "caller": sample.caller,
        "created_at": sample.created_at,
        "input_type": sample.input_type,
        "output_type": sample.output_type,
        "input_bytes": len(sample.input),
        "output_bytes": len(sample.output) if sample.output is not None else 0,
        "truncated": truncated,
        "error_code": sample.error_code,
        "key": key,
    }
