"""Alert rules as a model's managers see them: add, list and delete a model's rules and read
each rule's deliveries. Every method checks that the caller may manage the model (a model it
may not read does not exist for it).

A rule watches one signal (:mod:`algora.registry.signals`) of the model, one of its versions or
an alias, over a window, and sends each change of its state (``firing`` on the move to a
breach, ``resolved`` on the move back) to a webhook, signed with the rule's secret
(:mod:`algora.registry.alert_engine` evaluates and delivers). The secret is shown once, when
the rule is added, and kept sealed under the server's secrets key.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.principals import Caller
from algora.db.alerting import AlertDelivery, AlertRule
from algora.db.tables import Alias, Model
from algora.db.views import view_of
from algora.errors import InvalidInput, NotFound
from algora.registry.alert_checks import (
    Comparison,
    check_threshold,
    check_webhook,
    parse_window,
    window_text,
)
from algora.registry.secrets import ModelSecrets
from algora.registry.service import Registry
from algora.registry.signals import SIGNALS
from algora.registry.specs import is_alias_name
from algora.registry.stats import version_named

__all__ = [
    "MAX_RULES",
    "AlertRules",
    "AttemptView",
    "DeliveryView",
    "NewRule",
    "RuleRequest",
    "RuleView",
    "secret_context",
]

MAX_RULES = 100
"""Rules one model may hold."""
_MAX_ID = 2**31 - 1
_DELIVERIES_SHOWN = 100


def secret_context(rule_id: int, model_id: int) -> bytes:
    """What a rule's sealed secret is bound to: it does not open on another rule."""
    return f"algora-alert-secret:{model_id}:{rule_id}".encode()


@dataclass(frozen=True)
class RuleRequest:
    signal: str
    comparison: Comparison
    threshold: float
    window: str
    webhook: str
    version: str | None = None
    alias: str | None = None
    min_calls: int = 10
    secret: str | None = None
    """None: the server makes one (and shows it once)."""


@dataclass(frozen=True)
class RuleView:
    id: int
    model: str
    signal: str
    comparison: str
    threshold: float
    window: str
    version: str | None
    alias: str | None
    min_calls: int
    webhook: str
    state: str
    last_value: float | None
    last_count: int
    evaluated_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class NewRule:
    """A rule just added, and its signing secret: the one time it is shown."""

    rule: RuleView
    secret: str


@dataclass(frozen=True)
class AttemptView:
    at: datetime
    status_code: int | None
    """The webhook's answer; None when none came (``error`` says why)."""
    error: str | None


@dataclass(frozen=True)
class DeliveryView:
    delivery_id: str
    rule_id: int
    state: str
    value: float | None
    status: str
    tries: int
    attempts: tuple[AttemptView, ...]
    created_at: datetime
    next_attempt_at: datetime | None
    """When the next try is due; None once delivered or failed."""


def rule_view(model: str, row: AlertRule) -> RuleView:
    return view_of(
        RuleView, row, model=model, window=window_text(row.window_seconds), webhook=row.webhook_url
    )


def _attempt(raw: dict[str, Any]) -> AttemptView:
    return AttemptView(
        at=datetime.fromisoformat(raw["at"]), status_code=raw.get("status"), error=raw.get("error")
    )


def delivery_view(row: AlertDelivery) -> DeliveryView:
    return view_of(
        DeliveryView,
        row,
        attempts=tuple(_attempt(raw) for raw in row.attempts),
        next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
    )


class AlertRules:
    """Each method opens its own session and checks the caller's right to manage the model."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        registry: Registry,
        secrets_: ModelSecrets,
        allowed_hosts: list[str],
    ) -> None:
        self._sessions = sessions
        self._registry = registry
        self._secrets = secrets_
        self._allowed_hosts = allowed_hosts

    def add(self, caller: Caller, owner: str, name: str, request: RuleRequest) -> NewRule:
        """Add a rule to ``owner/name``; bad values raise InvalidInput (400), an unknown
        version or alias NotFound (404)."""
        if request.signal not in SIGNALS:
            raise InvalidInput(
                f"unknown signal '{request.signal[:40]}': use one of {', '.join(sorted(SIGNALS))}"
            )
        if request.comparison not in ("above", "below"):
            raise InvalidInput("comparison is above or below")
        check_threshold(request.threshold)
        window = parse_window(request.window)
        check_webhook(request.webhook, self._allowed_hosts)
        if request.version is not None and request.alias is not None:
            raise InvalidInput("a rule watches a version or an alias (or the model): not both")
        if not 1 <= request.min_calls <= 1_000_000:
            raise InvalidInput("min_calls is from 1 to 1000000")
        secret = request.secret if request.secret is not None else secrets.token_urlsafe(32)
        if not 16 <= len(secret) <= 256:
            raise InvalidInput("a signing secret is 16 to 256 characters")
        model_name = f"{owner}/{name}"
        with self._sessions() as session:
            model = self._registry.require_model(session, caller, owner, name, "manage")
            self._check_target(session, model, request)
            held = session.scalar(
                select(func.count()).select_from(AlertRule).where(AlertRule.model_id == model.id)
            )
            if (held or 0) >= MAX_RULES:
                raise InvalidInput(f"a model holds at most {MAX_RULES} alert rules")
            row = AlertRule(
                model_id=model.id,
                signal=request.signal,
                comparison=request.comparison,
                threshold=request.threshold,
                window_seconds=window,
                version=request.version,
                alias=request.alias,
                min_calls=request.min_calls,
                webhook_url=request.webhook,
                created_by=caller.principal_id,
            )
            session.add(row)
            session.flush()  # its id binds the sealed secret
            row.secret_sealed, row.secret_key_id = self._secrets.seal(
                secret, secret_context(row.id, model.id)
            )
            session.commit()
            return NewRule(rule_view(model_name, row), secret)

    def _check_target(self, session: Session, model: Model, request: RuleRequest) -> None:
        full = f"{model.owner.name}/{model.name}"
        if request.version is not None:
            version_named(session, model.id, request.version, full)
        if request.alias is not None:
            found = (
                is_alias_name(request.alias)
                and session.scalars(
                    select(Alias.id).where(Alias.model_id == model.id, Alias.name == request.alias)
                ).first()
            )
            if not found:
                raise NotFound(
                    f"'{full}' has no alias '{request.alias[:40]}': "
                    f"`algora alias list {full}` lists them"
                )

    def rules(self, caller: Caller, owner: str, name: str) -> list[RuleView]:
        with self._sessions() as session:
            model = self._registry.require_model(session, caller, owner, name, "manage")
            rows = session.scalars(
                select(AlertRule).where(AlertRule.model_id == model.id).order_by(AlertRule.id)
            ).all()
            return [rule_view(f"{owner}/{name}", row) for row in rows]

    def delete(self, caller: Caller, owner: str, name: str, rule_id: int) -> None:
        """Delete the rule and its deliveries (their audit rows stay)."""
        with self._sessions() as session:
            row = self._rule(session, caller, owner, name, rule_id)
            session.execute(delete(AlertDelivery).where(AlertDelivery.rule_id == row.id))
            session.delete(row)
            session.commit()

    def deliveries(self, caller: Caller, owner: str, name: str, rule_id: int) -> list[DeliveryView]:
        """The rule's latest deliveries, newest first, each with every try's outcome."""
        with self._sessions() as session:
            row = self._rule(session, caller, owner, name, rule_id)
            found = session.scalars(
                select(AlertDelivery)
                .where(AlertDelivery.rule_id == row.id)
                .order_by(AlertDelivery.id.desc())
                .limit(_DELIVERIES_SHOWN)
            ).all()
            return [delivery_view(delivery) for delivery in found]

    def _rule(
        self, session: Session, caller: Caller, owner: str, name: str, rule_id: int
    ) -> AlertRule:
        model = self._registry.require_model(session, caller, owner, name, "manage")
        row = session.get(AlertRule, rule_id) if 0 < rule_id <= _MAX_ID else None
        if row is None or row.model_id != model.id:
            raise NotFound(f"'{owner}/{name}' has no alert rule {rule_id}")
        return row
