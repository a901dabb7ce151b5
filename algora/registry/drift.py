"""A version's drift now: each feature's population stability index over a window of its live
counts (:mod:`algora.registry.drift_counts`) against its reference profile, and a status by the
version's thresholds (``drift_warn``, ``drift_alert``).

:func:`current_drift` is what other modules (alerting) read; :class:`Drift` is the service the
API calls, with the caller's read rights on the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.principals import Caller
from algora.db.shared_state import DriftCount, DriftProfile
from algora.db.tables import Version
from algora.errors import InvalidInput, NotFound
from algora.registry.drift_counts import CALLS, drift_settings
from algora.registry.drift_profile import Profile, psi
from algora.registry.service import Registry
from algora.registry.stats import version_named

__all__ = ["Drift", "FeatureDrift", "Status", "VersionDrift", "current_drift"]

Status = Literal["ok", "warn", "alert", "no data"]
_ORDER: tuple[Status, ...] = ("no data", "ok", "warn", "alert")
_TURN_ON = (
    "add [monitoring] drift = true and drift_reference (a JSON-lines file in the model folder) "
    "or drift_reference_calls (the first N calls) to algora.toml, and publish a new version"
)


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str
    psi: float | None
    """None when the window has no value of it."""
    status: Status
    window_n: int
    """Values of it in the window."""
    reference_n: int
    """Values of it in the reference."""


@dataclass(frozen=True)
class VersionDrift:
    model: str
    version: str
    since: datetime
    until: datetime
    reference: str
    """Where the profile came from: ``file``, ``calls``; ``pending`` while it is not made."""
    reference_size: int
    """The reference's calls (or lines)."""
    calls: int
    """The version's calls counted in the window."""
    warn: float
    alert: float
    status: Status
    """The worst feature's."""
    features: tuple[FeatureDrift, ...]


def _status(score: float | None, warn: float, alert: float) -> Status:
    if score is None:
        return "no data"
    return "alert" if score >= alert else "warn" if score >= warn else "ok"


def current_drift(
    session: Session,
    version: Version,
    since: datetime | None = None,
    until: datetime | None = None,
) -> VersionDrift | None:
    """``version``'s drift from ``since`` (default: an hour before ``until``) to ``until``
    (default: now), naive UTC; None when the version has no drift on."""
    settings = drift_settings(version.manifest)
    if settings is None:
        return None
    until = until or datetime.now(UTC).replace(tzinfo=None)
    since = since or until - timedelta(hours=1)
    if since >= until:
        raise InvalidInput("since must come before until: widen the window")
    warn, alert = float(settings.get("drift_warn", 0.1)), float(settings.get("drift_alert", 0.25))
    row = session.get(DriftProfile, version.id)
    counts: dict[str, dict[int, int]] = {}
    statement = (
        select(DriftCount.feature, DriftCount.bin, func.sum(DriftCount.count))
        .where(
            DriftCount.version_id == version.id,
            DriftCount.minute >= since.replace(second=0, microsecond=0),
            DriftCount.minute < until,
        )
        .group_by(DriftCount.feature, DriftCount.bin)
    )
    for name, bin_, count in session.execute(statement):
        counts.setdefault(name, {})[bin_] = int(count)
    profile = Profile.from_json(row.size, row.features) if row is not None else Profile(0, ())
    features = []
    for feature in profile.features:
        found = counts.get(feature.name, {})
        live = [found.get(index, 0) for index in range(len(feature.reference))]
        score = psi(feature.reference, live)
        features.append(
            FeatureDrift(
                feature.name,
                feature.kind,
                score,
                _status(score, warn, alert),
                sum(live),
                sum(feature.reference),
            )
        )
    worst: Status = max((f.status for f in features), key=_ORDER.index, default="no data")
    return VersionDrift(
        model=f"{version.model.owner.name}/{version.model.name}",
        version=version.semver,
        since=since,
        until=until,
        reference=row.source if row is not None else "pending",
        reference_size=profile.size,
        calls=counts.get(CALLS, {}).get(0, 0),
        warn=warn,
        alert=alert,
        status=worst,
        features=tuple(features),
    )


@dataclass(frozen=True)
class Drift:
    """Reads drift for the API; ``on_computed`` is told each version's scores (the gauge)."""

    sessions: sessionmaker[Session]
    registry: Registry
    on_computed: Callable[[VersionDrift], None] | None = None

    def drift(
        self,
        caller: Caller,
        owner: str,
        name: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        version: str | None = None,
    ) -> VersionDrift:
        """The drift of ``version`` (default: the newest ready version with drift on) of
        ``owner/name``; the caller must be able to read the model. NotFound says how to turn
        drift on for a version without it."""
        with self.sessions() as session:
            model = self.registry.require_model(session, caller, owner, name, "read")
            if version is not None:
                chosen: Version | None = version_named(
                    session, model.id, version, f"{owner}/{name}"
                )
            else:
                ready = session.scalars(
                    select(Version).where(Version.model_id == model.id, Version.status == "ready")
                ).all()
                watched = [v for v in ready if drift_settings(v.manifest) is not None]
                chosen = max(watched, key=lambda v: (v.major, v.minor, v.patch), default=None)
            answer = current_drift(session, chosen, since, until) if chosen is not None else None
            if answer is None:
                which = f"version {version}" if version is not None else "no ready version"
                raise NotFound(f"'{owner}/{name}' {which} has no drift monitoring: {_TURN_ON}")
        if self.on_computed is not None:
            self.on_computed(answer)
        return answer
