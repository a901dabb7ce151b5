"""Aliases that move live traffic: a weighted split of an alias's calls between versions
(``production``: 1.0.0 90 %, 1.1.0 10 %), and a shadow version that gets a copy of each call.

An alias's targets live in ``alias_targets``; an alias without any points at its one version
(``aliases.version_id``) as it always did, and an alias with a split keeps its heaviest version
there, so whatever reads only that column sees the version that takes most of the traffic.
:class:`AliasRoutes` is what the call path asks, per alias, where a call goes
(:meth:`Routing.pick`, a weighted random choice per call, or for a sticky alias one fixed by
the caller's key) and where its copy goes; the shadow's
answer is discarded and its failures never reach the caller. :mod:`algora.registry.aliases`
sets the targets through :func:`replace_targets`.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from algora.db.tables import Alias, AliasTarget, Version

__all__ = [
    "AliasRoutes",
    "Routing",
    "Split",
    "describe",
    "replace_targets",
    "target_rows",
    "targets_of",
]

Split = Sequence[tuple[Version, int]]
"""The versions an alias shares its calls between, with their weights."""


@dataclass(frozen=True)
class Routing:
    """Where an alias's calls go: one of ``versions`` by weight, and a copy to ``shadow``."""

    versions: tuple[Version, ...]
    weights: tuple[int, ...]
    shadow: Version | None = None
    sticky_to: str = ""
    """For a sticky alias, what a caller's place is drawn from with its key (the alias's model
    and name); empty when each call is drawn at random."""
    _cumulative: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_cumulative", tuple(itertools.accumulate(self.weights)))

    def pick(self, key_id: str = "") -> Version:
        """The version this call goes to, in proportion to the weights: at random, or for a
        sticky alias by the caller's key, which then always lands on the same version while the
        split stands. A key's place is a fixed point in the total of the weights, and the
        versions keep their order, so widening the last version's share (a canary going 10 %,
        50 %, 100 %) moves callers only towards it."""
        if len(self.versions) == 1:
            return self.versions[0]
        if self.sticky_to and key_id:
            return self.versions[bisect.bisect_right(self._cumulative, self._place(key_id))]
        # Not a secret: a share of traffic, spread evenly enough by any generator.
        return random.choices(self.versions, cum_weights=self._cumulative)[0]  # noqa: S311

    def _place(self, key_id: str) -> int:
        digest = hashlib.blake2b(f"{self.sticky_to}:{key_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest) % self._cumulative[-1]


class AliasRoutes:
    """Reads an alias's targets for the call path (which caches the answer)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def routing(self, model_id: int, alias: str) -> Routing | None:
        """Where ``alias`` of the model sends calls; None when it points at one version and
        has no shadow (or no longer exists): the call path then uses the version the alias
        resolved to. Blocking."""
        with self._sessions() as session:
            rows = session.execute(
                select(AliasTarget, Version, Alias.sticky)
                .join(Alias, Alias.id == AliasTarget.alias_id)
                .join(Version, Version.id == AliasTarget.version_id)
                .where(Alias.model_id == model_id, Alias.name == alias)
                .order_by(AliasTarget.id)
            ).all()
        if not rows:
            return None
        shares = [(version, target.weight) for target, version, _ in rows if not target.shadow]
        shadow = next((version for target, version, _ in rows if target.shadow), None)
        if not shares:  # a shadow beside the alias's one version
            with self._sessions() as session:
                row = session.scalars(
                    select(Alias).where(Alias.model_id == model_id, Alias.name == alias)
                ).first()
                if row is None:
                    return None
                shares = [(row.version, 1)]
        return Routing(
            versions=tuple(version for version, _ in shares),
            weights=tuple(weight for _, weight in shares),
            shadow=shadow,
            sticky_to=f"{model_id}/{alias}" if rows[0][2] else "",
        )


def target_rows(session: Session, alias: Alias) -> list[tuple[AliasTarget, Version]]:
    """The alias's targets and their versions, in the order they were set (none without a
    split or a shadow)."""
    rows = session.execute(
        select(AliasTarget, Version)
        .join(Version, Version.id == AliasTarget.version_id)
        .where(AliasTarget.alias_id == alias.id)
        .order_by(AliasTarget.id)
    ).all()
    return [(target, version) for target, version in rows]


def targets_of(session: Session, alias: Alias) -> tuple[tuple[tuple[str, int], ...], str | None]:
    """The alias's split as ``((semver, weight), ...)`` (its one version at 100 when it has no
    split) and its shadow's semver."""
    rows = target_rows(session, alias)
    shares = tuple((version.semver, target.weight) for target, version in rows if not target.shadow)
    shadow = next((version.semver for target, version in rows if target.shadow), None)
    return shares or ((alias.version.semver, 100),), shadow


def describe(shares: Sequence[tuple[str, int]], shadow: str | None, sticky: bool = False) -> str:
    """``1.0.0``, ``1.0.0=90,1.1.0=10`` (``+sticky`` when each key keeps to one version), either
    with ``+shadow:1.2.0``: for the audit row."""
    if len(shares) == 1:
        text = shares[0][0]
    else:
        text = ",".join(f"{v}={w}" for v, w in shares) + ("+sticky" if sticky else "")
    return f"{text}+shadow:{shadow}" if shadow else text


def replace_targets(session: Session, alias: Alias, split: Split, shadow: Version | None) -> None:
    """Make ``split`` (none, or one version: the alias's own) and ``shadow`` the alias's
    targets (uncommitted; the alias row exists)."""
    session.execute(delete(AliasTarget).where(AliasTarget.alias_id == alias.id))
    targets = [(version, weight, False) for version, weight in split] if len(split) > 1 else []
    if shadow is not None:
        targets.append((shadow, 0, True))
    for version, weight, is_shadow in targets:
        session.add(
            AliasTarget(alias_id=alias.id, version_id=version.id, weight=weight, shadow=is_shadow)
        )
    session.flush()
