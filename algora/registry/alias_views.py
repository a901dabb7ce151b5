"""What the aliases service (:mod:`algora.registry.aliases`) hands out and decides by: its
policy (which aliases are protected), the alias-name rule, and its frozen views."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, cast

from sqlalchemy.orm import Session

from algora.db.tables import Model, Principal, PromotionRequest, Version
from algora.errors import InvalidAlias
from algora.registry.specs import is_alias_name
from algora.settings import Settings

__all__ = [
    "AliasPolicy",
    "AliasView",
    "Move",
    "PromotionStatus",
    "PromotionView",
    "SetOutcome",
    "check_alias_name",
    "full_name",
    "name_of",
    "promotion_status",
    "same_principal",
    "semver_of",
]

PromotionStatus = Literal["pending", "approved", "rejected", "expired", "superseded"]
_AUDIT_TEXT = 64  # the audit row's version column


def check_alias_name(name: str) -> str:
    if not is_alias_name(name):
        raise InvalidAlias(
            f"'{name[:80]}' cannot name an alias: use 1-32 lowercase letters, digits, '-' or "
            "'_', starting with a letter, that do not read as a version spec (latest, 1.x, "
            "1.2.3, v1, a content hash)"
        )
    return name


@dataclass(frozen=True)
class AliasPolicy:
    """Which aliases move only by approved promotion, and how long a request waits."""

    protected: frozenset[str] = frozenset()
    by_owner: tuple[tuple[str, frozenset[str]], ...] = ()
    expiry: timedelta = timedelta(days=7)

    @classmethod
    def of(cls, settings: Settings) -> AliasPolicy:
        return cls(
            protected=frozenset(settings.protected_aliases),
            by_owner=tuple(
                (owner, frozenset(names))
                for owner, names in sorted(settings.protected_aliases_by_owner.items())
            ),
            expiry=timedelta(seconds=settings.promotion_expiry_seconds),
        )

    def protects(self, owner: str, alias: str) -> bool:
        if alias in self.protected:
            return True
        return any(alias in names for who, names in self.by_owner if who == owner)


@dataclass(frozen=True)
class AliasView:
    model: str
    name: str
    version: str
    """The version the alias points at: with a split, the one with the largest share."""
    weights: tuple[tuple[str, int], ...]
    """The versions its calls go to and their shares: its one version at 100 without a split."""
    shadow: str | None
    """The version that gets a copy of each call (its answers discarded), if any."""
    sticky: bool
    """Whether each caller's key keeps to one version of the split."""
    protected: bool
    updated_at: datetime
    updated_by: str | None


@dataclass(frozen=True)
class Move:
    """An alias moved (``old`` None: it was created; ``new`` None: it was deleted)."""

    model: str
    alias: str
    old: str | None
    new: str | None

    @property
    def audit_text(self) -> str:
        """``production:1.0.0->1.1.0``: the audit row's version field (never a payload)."""
        return f"{self.alias}:{self.old or ''}->{self.new or ''}"[:_AUDIT_TEXT]


@dataclass(frozen=True)
class PromotionView:
    id: int
    model: str
    alias: str
    version: str
    from_version: str | None
    status: PromotionStatus
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    note: str
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str

    @property
    def audit_text(self) -> str:
        return f"{self.alias}:{self.from_version or ''}->{self.version}"[:_AUDIT_TEXT]


@dataclass(frozen=True)
class SetOutcome:
    """What setting an alias did: moved it, or (protected) asked for a promotion."""

    move: Move | None = None
    alias: AliasView | None = None
    promotion: PromotionView | None = None


def promotion_status(row: PromotionRequest, now: datetime) -> PromotionStatus:
    if row.status == "pending" and row.expires_at <= now:
        return "expired"
    return cast(PromotionStatus, row.status)  # the column only holds these


def full_name(model: Model) -> str:
    return f"{model.owner.name}/{model.name}"


def name_of(session: Session, principal_id: int | None) -> str | None:
    if principal_id is None:
        return None
    principal = session.get(Principal, principal_id)
    return principal.name if principal is not None else None


def semver_of(session: Session, version_id: int | None) -> str | None:
    if version_id is None:
        return None
    version = session.get(Version, version_id)
    return version.semver if version is not None else None


def same_principal(session: Session, one: int, other: int) -> bool:
    """The same principal, or a service account and the principal that owns it."""
    if one == other:
        return True
    first, second = session.get(Principal, one), session.get(Principal, other)
    if first is None or second is None:
        return False
    return first.owner_id == second.id or second.owner_id == first.id
