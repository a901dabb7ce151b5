"""Aliases: mutable names of a model's versions, and the promotions that move protected ones.

An alias (``production``) points at one ready version of its model; a caller names it wherever
a version spec goes (``/v1/algo/acme/hello/production``), and
:meth:`algora.registry.service.Registry.resolve` resolves it like any other spec. Aliases move;
versions do not. Setting or deleting one needs manage rights on the model (the routes check
the ``aliases:write`` scope).

Protected aliases (``protected_aliases`` and ``protected_aliases_by_owner`` in the settings)
move only by promotion: setting one records a pending :class:`PromotionRequest` instead, for
one concrete version (``latest`` is resolved when the request is made, so approvers approve
exactly what will serve). A second principal holding manage rights on the model (and the
``aliases:approve`` scope, checked by the route) approves it, which moves the alias, or rejects
it. The requester, and a service account and the principal that owns it, count as one
principal here. Requests expire after ``promotion_expiry_seconds``; a newer request for the same
alias supersedes a pending one. A protected alias cannot be deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.policy import Action, can
from algora.auth.principals import Caller
from algora.db.tables import Alias, Model, PromotionRequest, Version, utcnow
from algora.db.views import view_of
from algora.errors import (
    AliasNotFound,
    AliasProtected,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PromotionClosed,
    VersionNotReady,
)
from algora.registry.alias_views import (
    AliasPolicy,
    AliasView,
    Move,
    PromotionStatus,
    PromotionView,
    SetOutcome,
    check_alias_name,
    full_name,
    name_of,
    promotion_status,
    same_principal,
    semver_of,
)
from algora.registry.routing import Split, describe, replace_targets, targets_of
from algora.registry.service import Registry
from algora.registry.specs import parse_spec

__all__ = [
    "AliasPolicy",
    "AliasView",
    "Aliases",
    "Move",
    "PromotionStatus",
    "PromotionView",
    "SetOutcome",
    "check_alias_name",
]


@dataclass(frozen=True, eq=False)
class Aliases:
    """Reads and moves aliases and decides promotions; each method opens its own session."""

    sessions: sessionmaker[Session]
    registry: Registry
    policy: AliasPolicy
    before_move: Callable[[int], None] | None = None
    """Loads a version's workers (blocking) before an alias moves traffic to it."""

    # aliases ------------------------------------------------------------------------------
    def list_aliases(self, caller: Caller, owner: str, name: str) -> list[AliasView]:
        with self.sessions() as session:
            model = self._model(session, caller, owner, name, "read")
            rows = session.scalars(
                select(Alias).where(Alias.model_id == model.id).order_by(Alias.name)
            ).all()
            return [self._alias_view(session, model, row) for row in rows]

    def get_alias(self, caller: Caller, owner: str, name: str, alias: str) -> AliasView:
        check_alias_name(alias)
        with self.sessions() as session:
            model = self._model(session, caller, owner, name, "read")
            return self._alias_view(session, model, self._alias_row(session, model, alias))

    def set_alias(
        self,
        caller: Caller,
        owner: str,
        name: str,
        alias: str,
        target: str | None,
        note: str = "",
        *,
        weights: Mapping[str, int] | None = None,
        shadow: str | None = None,
        sticky: bool = False,
    ) -> SetOutcome:
        """Point ``alias`` at the version ``target`` names (any spec, resolved now), or split
        its calls between the versions ``weights`` names (spec -> weight), ``sticky`` keeping
        each caller's key on one of them; ``shadow`` names a version that gets a copy of each
        call. A protected alias asks for a promotion instead (to one version: a split or a
        shadow of a protected alias is refused)."""
        check_alias_name(alias)
        split = self._split(caller, owner, name, target, weights)
        if sticky and len(split) < 2:
            raise InvalidInput(
                "sticky keeps each caller's key on one version of a split: give two or more "
                "versions with weights, or leave sticky out"
            )
        copy = self._shadow(caller, owner, name, shadow, split) if shadow else None
        protected = self.policy.protects(owner, alias)
        if protected and (len(split) > 1 or copy is not None):
            raise AliasProtected(
                f"'{alias}' is a protected alias: it moves to one version, by an approved "
                "promotion; split or shadow traffic with another alias (canary, staging)"
            )
        version = max(split, key=lambda share: share[1])[0]
        if self.before_move is not None and not protected:
            loading = [v for v, _ in split] + ([copy] if copy is not None else [])
            for version_id in dict.fromkeys(v.id for v in loading):
                self.before_move(version_id)
        for _attempt in range(3):
            with self.sessions() as session:
                model = self._model(session, caller, owner, name, "manage")
                current = self._find_alias(session, model.id, alias)
                if protected and (current is None or current.version_id != version.id):
                    return SetOutcome(
                        promotion=self._new_request(session, caller, model, alias, version, note)
                    )
                by = caller.principal_id
                move = self._move(session, model, alias, version, by, split, copy, sticky)
                try:
                    session.commit()
                except IntegrityError:  # created by a concurrent request: go again
                    session.rollback()
                    continue
                row = self._alias_row(session, model, alias)
                return SetOutcome(move=move, alias=self._alias_view(session, model, row))
        raise Conflict(f"alias '{alias}' changed under concurrent requests: try again")

    def delete_alias(self, caller: Caller, owner: str, name: str, alias: str) -> Move:
        check_alias_name(alias)
        with self.sessions() as session:
            model = self._model(session, caller, owner, name, "manage")
            if self.policy.protects(owner, alias):
                raise AliasProtected(
                    f"'{alias}' is a protected alias: it moves only by an approved promotion "
                    "and cannot be deleted (an admin can unprotect it in the settings)"
                )
            row = self._alias_row(session, model, alias)
            move = Move(
                full_name(model), alias, describe(*targets_of(session, row), row.sticky), None
            )
            replace_targets(session, row, (), None)
            session.delete(row)
            session.commit()
            return move

    # promotions ---------------------------------------------------------------------------
    def request_promotion(
        self, caller: Caller, owner: str, name: str, alias: str, target: str, note: str = ""
    ) -> PromotionView:
        """Ask for ``alias`` to point at the version ``target`` names, once approved."""
        check_alias_name(alias)
        version = self._target(caller, owner, name, target)
        with self.sessions() as session:
            model = self._model(session, caller, owner, name, "manage")
            current = self._find_alias(session, model.id, alias)
            if current is not None and current.version_id == version.id:
                raise Conflict(f"alias '{alias}' already points at {version.semver}")
            return self._new_request(session, caller, model, alias, version, note)

    def promotions(
        self,
        caller: Caller,
        owner: str | None = None,
        name: str | None = None,
        status: PromotionStatus | None = "pending",
    ) -> list[PromotionView]:
        """Requests (newest first) of one model, or of every model the caller manages."""
        now = utcnow()
        with self.sessions() as session:
            statement = select(PromotionRequest).order_by(PromotionRequest.id.desc())
            models: dict[int, Model] = {}
            if owner is not None and name is not None:
                model = self._model(session, caller, owner, name, "manage")
                models[model.id] = model
                statement = statement.where(PromotionRequest.model_id == model.id)
            if status in ("pending", "expired"):
                statement = statement.where(PromotionRequest.status.in_(("pending", "expired")))
            elif status is not None:
                statement = statement.where(PromotionRequest.status == status)
            views = []
            for row in session.scalars(statement.limit(1000)):
                if status is not None and promotion_status(row, now) != status:
                    continue
                model_row = models.get(row.model_id) or session.get(Model, row.model_id)
                if model_row is None or not can(caller, "manage", model_row):
                    continue
                models[row.model_id] = model_row
                views.append(self._promotion_view(session, model_row, row, now))
            return views

    def promotion(self, caller: Caller, owner: str, name: str, request_id: int) -> PromotionView:
        with self.sessions() as session:
            model = self._model(session, caller, owner, name, "manage")
            row = self._request_row(session, model, request_id)
            return self._promotion_view(session, model, row, utcnow())

    def approve(
        self, caller: Caller, owner: str, name: str, request_id: int, note: str = ""
    ) -> tuple[PromotionView, Move]:
        """Approve another principal's pending request: the alias moves at once."""
        if self.before_move is not None:
            with self.sessions() as session:
                _model, row = self._decidable(session, caller, owner, name, request_id, "approve")
                target = row.version_id
            self.before_move(target)
        with self.sessions() as session:
            model, row = self._decidable(session, caller, owner, name, request_id, "approve")
            version = session.get(Version, row.version_id)
            if version is None or version.status != "ready":
                raise VersionNotReady(f"the requested version of '{full_name(model)}' is not ready")
            self._decide(session, row, caller, "approved", note)
            try:
                move = self._move(session, model, row.alias, version, caller.principal_id)
                session.commit()
            except IntegrityError:  # the alias was created meanwhile: nothing was decided
                session.rollback()
                raise Conflict(
                    f"alias '{row.alias}' changed while request {request_id} was approved: "
                    "approve it again"
                ) from None
            return self._promotion_view(session, model, row, utcnow()), move

    def reject(
        self, caller: Caller, owner: str, name: str, request_id: int, note: str = ""
    ) -> PromotionView:
        """Reject another principal's pending request: nothing moves."""
        with self.sessions() as session:
            model, row = self._decidable(session, caller, owner, name, request_id, "reject")
            self._decide(session, row, caller, "rejected", note)
            session.commit()
            return self._promotion_view(session, model, row, utcnow())

    # helpers ------------------------------------------------------------------------------
    def _model(
        self, session: Session, caller: Caller, owner: str, name: str, action: Action
    ) -> Model:
        return self.registry.require_model(session, caller, owner, name, action)

    def _target(self, caller: Caller, owner: str, name: str, target: str) -> Version:
        """The ready version of this model that ``target`` names, once the caller may manage
        the model (a stranger learns nothing about its versions)."""
        with self.sessions() as session:
            self._model(session, caller, owner, name, "manage")
        _model, version = self.registry.resolve(owner, name, parse_spec(target), caller)
        return version

    def _find_alias(self, session: Session, model_id: int, alias: str) -> Alias | None:
        return session.scalars(
            select(Alias).where(Alias.model_id == model_id, Alias.name == alias)
        ).first()

    def _alias_row(self, session: Session, model: Model, alias: str) -> Alias:
        row = self._find_alias(session, model.id, alias)
        if row is None:
            raise AliasNotFound(f"'{full_name(model)}' has no alias '{alias}'")
        return row

    def _alias_view(self, session: Session, model: Model, row: Alias) -> AliasView:
        weights, shadow = targets_of(session, row)
        return AliasView(
            model=full_name(model),
            name=row.name,
            version=row.version.semver,
            weights=weights,
            shadow=shadow,
            sticky=row.sticky and len(weights) > 1,
            protected=self.policy.protects(model.owner.name, row.name),
            updated_at=row.updated_at,
            updated_by=name_of(session, row.updated_by),
        )

    def _move(
        self,
        session: Session,
        model: Model,
        alias: str,
        version: Version,
        by: int,
        split: Split = (),
        shadow: Version | None = None,
        sticky: bool = False,
    ) -> Move:
        """Point the alias at the version, or at the split (led by ``version``, ``sticky``
        or not) and shadow (uncommitted)."""
        row = self._find_alias(session, model.id, alias)
        old = describe(*targets_of(session, row), row.sticky) if row is not None else None
        if row is None:
            row = Alias(
                model_id=model.id, name=alias, version_id=version.id, updated_by=by, sticky=sticky
            )
            session.add(row)
            session.flush()
        replace_targets(session, row, split, shadow)
        shares = [(v.semver, w) for v, w in split] if len(split) > 1 else [(version.semver, 100)]
        new = describe(shares, shadow.semver if shadow else None, sticky)
        if old is not None and new != old:  # pointing it where it points changes nothing
            row.version_id = version.id
            row.sticky = sticky
            row.updated_by = by
            row.updated_at = utcnow()
        session.flush()
        return Move(full_name(model), alias, old, new)

    def _split(
        self,
        caller: Caller,
        owner: str,
        name: str,
        target: str | None,
        weights: Mapping[str, int] | None,
    ) -> Split:
        """The versions (resolved now) and weights an alias is set to: ``target`` alone, or
        those of ``weights``."""
        if not weights:
            if not target:
                raise InvalidInput("name the version the alias points at, or versions with weights")
            return [(self._target(caller, owner, name, target), 100)]
        if target:
            raise InvalidInput("name one version, or versions with weights, not both")
        if any(weight < 1 for weight in weights.values()):
            raise InvalidInput(
                "weights are shares of the alias's calls: whole numbers from 1 (90 and 10, or "
                "1 and 1); leave out a version that should get none"
            )
        split: list[tuple[Version, int]] = []
        for spec, weight in weights.items():
            version = self._target(caller, owner, name, spec)
            if any(version.id == chosen.id for chosen, _ in split):  # what specs name now
                raise Conflict(f"two specs of the split name {version.semver}: name it once")
            split.append((version, weight))
        return split

    def _shadow(self, caller: Caller, owner: str, name: str, spec: str, split: Split) -> Version:
        version = self._target(caller, owner, name, spec)
        if any(version.id == shared.id for shared, _ in split):  # what specs name now
            raise Conflict(
                f"the shadow {version.semver} also takes a share of the calls: a shadow gets "
                "a copy of each call, so name a version outside the split"
            )
        return version

    def _new_request(
        self,
        session: Session,
        caller: Caller,
        model: Model,
        alias: str,
        version: Version,
        note: str,
    ) -> PromotionView:
        now = utcnow()
        session.execute(
            update(PromotionRequest)
            .where(
                PromotionRequest.model_id == model.id,
                PromotionRequest.alias == alias,
                PromotionRequest.status == "pending",
            )
            .values(status="superseded", decided_at=now)
        )
        current = self._find_alias(session, model.id, alias)
        row = PromotionRequest(
            model_id=model.id,
            alias=alias,
            version_id=version.id,
            from_version_id=current.version_id if current is not None else None,
            requested_by=caller.principal_id,
            note=note,
            status="pending",
            created_at=now,
            expires_at=now + self.policy.expiry,
        )
        session.add(row)
        session.commit()
        return self._promotion_view(session, model, row, now)

    def _request_row(self, session: Session, model: Model, request_id: int) -> PromotionRequest:
        row = session.get(PromotionRequest, request_id)
        if row is None or row.model_id != model.id:
            raise NotFound(f"'{full_name(model)}' has no promotion request {request_id}")
        return row

    def _decidable(
        self,
        session: Session,
        caller: Caller,
        owner: str,
        name: str,
        request_id: int,
        verb: str,
    ) -> tuple[Model, PromotionRequest]:
        """The model and a pending request that the caller may decide, or raise."""
        model = self._model(session, caller, owner, name, "manage")
        row = self._request_row(session, model, request_id)
        status = promotion_status(row, utcnow())
        if status == "expired" and row.status == "pending":
            row.status = "expired"
            session.commit()
        if status != "pending":
            raise PromotionClosed(
                f"promotion request {request_id} is {status}, not pending: ask for a new one",
                details={"status": status},
            )
        if same_principal(session, caller.principal_id, row.requested_by):
            raise PermissionDenied(
                f"you asked for promotion request {request_id}: another principal with manage "
                f"rights on '{full_name(model)}' and the 'aliases:approve' scope must {verb} it"
            )
        return model, row

    def _decide(
        self,
        session: Session,
        row: PromotionRequest,
        caller: Caller,
        status: PromotionStatus,
        note: str,
    ) -> None:
        """Claim the pending request for this decision; only one concurrent decision wins."""
        now = utcnow()
        result = session.execute(
            update(PromotionRequest)
            .where(PromotionRequest.id == row.id, PromotionRequest.status == "pending")
            .values(status=status, decided_by=caller.principal_id, decided_at=now)
            .values(decision_note=note)
            .execution_options(synchronize_session=False)
        )
        if cast(CursorResult[Any], result).rowcount != 1:
            session.rollback()
            raise PromotionClosed(
                f"promotion request {row.id} was decided by someone else meanwhile",
                details={"status": "decided"},
            )
        session.refresh(row)

    def _promotion_view(
        self, session: Session, model: Model, row: PromotionRequest, now: datetime
    ) -> PromotionView:
        return view_of(
            PromotionView,
            row,
            model=full_name(model),
            version=semver_of(session, row.version_id) or "",
            from_version=semver_of(session, row.from_version_id),
            status=promotion_status(row, now),
            requested_by=name_of(session, row.requested_by) or "",
            requested_at=row.created_at,
            decided_by=name_of(session, row.decided_by),
        )
