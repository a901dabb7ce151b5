"""Drift's live counts: each call of a version with ``[monitoring] drift = true`` counted per
minute, feature and bin of the version's profile, in memory, and added to ``drift_counts``
every few seconds (:mod:`algora.registry.accumulating`), so several gateways add to one row.

For a version without drift that is one dict lookup a call. A version's profile is made from
its reference file when first needed (at publish, or by the first gateway that serves it) or,
with ``drift_reference_calls = N``, from its first N calls on the gateway that sees them first
(each gateway keeps its calls until a profile is stored; the first to store one wins). Calls
that come before a gateway has read the profile wait (a bounded number) and are counted then.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from algora.db.shared_state import DriftCount, DriftProfile
from algora.db.tables import Version
from algora.registry.accumulating import Accumulator, additive_upsert
from algora.registry.drift_profile import Profile, build_profile, reference_in, rows_of
from algora.workers.spec import CallResult

__all__ = ["CALLS", "DriftCounts", "drift_settings"]

logger = logging.getLogger(__name__)

CALLS = "*"
"""The feature whose bin 0 counts a version's calls."""
_MAX_WAITING = 100_000
_KEPT_VERSIONS = 10_000
Key = tuple[int, int, str, int]
"""(version id, minute since the epoch, feature, bin)."""


def drift_settings(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The ``[monitoring]`` table of a version's manifest when drift is on; else None."""
    monitoring = manifest.get("monitoring") or {}
    return monitoring if monitoring.get("drift") else None


class _Tally:
    __slots__ = ("count", "model_id")

    def __init__(self, model_id: int) -> None:
        self.model_id = model_id
        self.count = 0

    def add(self, other: _Tally) -> None:
        self.count += other.count


@dataclass
class _Watch:
    """A version with drift on, as this gateway counts it."""

    model_id: int
    version_id: int
    folder: Path
    reference: str | None
    first_calls: int
    profile: Profile | None = None
    waiting: list[tuple[int, Any, Any]] = field(default_factory=list)
    """Calls before the profile: (minute, input, output)."""


def _decoded(content_type: str, payload: bytes) -> Any:
    if content_type == "json":
        try:
            return json.loads(payload)
        except ValueError:
            return None
    if content_type == "text":
        return payload.decode("utf-8", "replace")
    return None


class DriftCounts(Accumulator[Key, _Tally]):
    """Counts calls of versions with drift on; makes and reads their profiles."""

    what = "drift counts"

    def __init__(self, sessions: sessionmaker[Session], data_dir: Path) -> None:
        super().__init__()
        self._sessions = sessions
        self._sources = data_dir / "sources"
        self._watched: dict[int, _Watch | None] = {}

    def record(
        self, version: Version, content_type: str, payload: bytes, answer: CallResult
    ) -> None:
        """Count one answered call of ``version`` (its input's content type and payload, and its
        answer). On the serving loop only."""
        if version.id in self._watched:
            watch = self._watched[version.id]
        else:
            if len(self._watched) > _KEPT_VERSIONS:
                self._watched.clear()
            watch = self._watched[version.id] = self._watch(version)
        if watch is None:
            return
        given = _decoded(content_type, payload)
        answered = _decoded(answer.content_type, answer.payload)
        minute = int(time.time()) // 60
        if watch.profile is None:
            if len(watch.waiting) < _MAX_WAITING:
                watch.waiting.append((minute, given, answered))
            return
        self._count(watch, watch.profile, minute, given, answered)

    def _watch(self, version: Version) -> _Watch | None:
        settings = drift_settings(version.manifest)
        if settings is None:
            return None
        return _Watch(
            model_id=version.model_id,
            version_id=version.id,
            folder=self._sources / str(version.content_hash),
            reference=settings.get("drift_reference"),
            first_calls=int(settings.get("drift_reference_calls") or 0),
        )

    def _count(
        self, watch: _Watch, profile: Profile, minute: int, given: Any, answered: Any
    ) -> None:
        features = profile.by_name()
        self._add((watch.version_id, minute, CALLS, 0), watch.model_id)
        for side, value in (("input", given), ("output", answered)):
            for row in rows_of(value, side):  # type: ignore[arg-type]
                for name, plain in row.items():
                    feature = features.get(name)
                    if feature is None:
                        continue
                    bin_ = feature.bin_of(plain)
                    if bin_ is not None:
                        self._add((watch.version_id, minute, name, bin_), watch.model_id)

    def _add(self, key: Key, model_id: int) -> None:
        tally = self._pending.get(key)
        if tally is None:
            tally = self._pending[key] = _Tally(model_id)
        tally.count += 1

    async def flush(self) -> None:
        """Read or make the profiles calls wait for, count those calls, then write the counts."""
        for watch in list(self._watched.values()):
            if watch is None or watch.profile is not None or not watch.waiting:
                continue
            try:
                made = await asyncio.to_thread(self._profile_for, watch)
            except Exception:
                logger.warning(
                    "could not make the drift profile of version #%s",
                    watch.version_id,
                    exc_info=True,
                )
                continue
            if made is not None:
                profile, used = made
                waiting, watch.waiting = watch.waiting[used:], []
                watch.profile = profile
                for minute, given, answered in waiting:
                    self._count(watch, profile, minute, given, answered)
        await super().flush()

    def _profile_for(self, watch: _Watch) -> tuple[Profile, int] | None:
        """The stored profile (and 0), or one made now (and how many waiting calls made it);
        None while the first calls are too few (blocking)."""
        stored = self.stored(watch.version_id)
        if stored is not None:
            return stored, 0
        if watch.reference is not None:
            profile = reference_in(watch.folder, watch.reference)
            if profile is not None:
                return self.store(watch.model_id, watch.version_id, "file", profile), 0
            return None
        if len(watch.waiting) < watch.first_calls:
            return None
        first = watch.waiting[: watch.first_calls]
        profile = build_profile((given, answered) for _minute, given, answered in first)
        stored = self.store(watch.model_id, watch.version_id, "calls", profile)
        return stored, (len(first) if stored == profile else 0)

    def stored(self, version_id: int) -> Profile | None:
        """Version ``version_id``'s stored profile, if any (blocking)."""
        with self._sessions() as session:
            row = session.get(DriftProfile, version_id)
            return Profile.from_json(row.size, row.features) if row is not None else None

    def store(self, model_id: int, version_id: int, source: str, profile: Profile) -> Profile:
        """Store ``profile`` unless one is stored already; the one stored (blocking)."""
        row = {
            "version_id": version_id,
            "model_id": model_id,
            "source": source,
            "size": profile.size,
            "features": profile.as_json(),
            "created_at": datetime.now(UTC).replace(tzinfo=None),
        }
        with self._sessions() as session:
            postgres = session.get_bind().dialect.name == "postgresql"
            insert = (postgresql.insert if postgres else sqlite.insert)(DriftProfile)
            session.execute(insert.on_conflict_do_nothing(index_elements=["version_id"]), [row])
            session.commit()
        return self.stored(version_id) or profile

    def profile_at_publish(self, version_id: int) -> None:
        """Make a newly ready version's profile from its reference file, if it names one
        (blocking: the publisher's callback)."""
        with self._sessions() as session:
            version = session.get(Version, version_id)
            if version is None or version.status != "ready":
                return
            watch = self._watch(version)
        if watch is not None and watch.reference is not None:
            try:
                self._profile_for(watch)
            except Exception:
                logger.warning(
                    "could not make the drift profile of version #%s", version_id, exc_info=True
                )

    def write(self, pending: dict[Key, _Tally]) -> None:
        with self._sessions() as session:
            try:
                session.execute(_upsert(session), list(_rows(pending.items())))
                session.commit()
            except IntegrityError:  # a version that is gone: nothing to count it under
                session.rollback()


def _rows(items: Iterable[tuple[Key, _Tally]]) -> Iterable[dict[str, Any]]:
    for (version_id, minute, feature, bin_), tally in items:
        yield {
            "version_id": version_id,
            "minute": datetime.fromtimestamp(minute * 60, UTC).replace(tzinfo=None),
            "feature": feature,
            "bin": bin_,
            "model_id": tally.model_id,
            "count": tally.count,
        }


def _upsert(session: Session) -> Any:
    return additive_upsert(
        session, DriftCount, ("version_id", "minute", "feature", "bin"), ("count",)
    )
