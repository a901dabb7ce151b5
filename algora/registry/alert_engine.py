"""The gateway's alert loop: evaluates the rules (:mod:`algora.registry.alerts`) every
``alert_interval_seconds`` and sends their deliveries to webhooks.

Several gateways on one registry run it at once: a gateway evaluates a rule only after claiming
it for the round (``claimed_until``, set by one conditional update that only one gateway wins),
and sends a delivery only after claiming it for the try. A rule that moves to a breach gets one
delivery (``firing``), and one more when it moves back (``resolved``); none while it stays.

A delivery is a JSON body signed with the rule's secret (``X-Algora-Signature: sha256=<hex
HMAC-SHA256 of the body>``, ``X-Algora-Timestamp``, ``X-Algora-Delivery``), posted with a short
timeout; a try that gets no 2xx is retried after ``alert_retry_seconds``, doubling, up to
``alert_max_attempts`` tries. Every try is kept on the delivery and written to the audit log
(action ``alert.deliver``, the delivery id as its request id). Database work runs in threads;
the webhook is awaited, so a slow receiver holds up no call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from algora.audit.log import AuditEvent, AuditLog
from algora.db.alerting import AlertDelivery, AlertRule
from algora.db.tables import Model, utcnow
from algora.errors import Unavailable
from algora.registry.alert_checks import Rule, breached, next_state, sign, window_text
from algora.registry.alerts import secret_context
from algora.registry.secrets import ModelSecrets
from algora.registry.signals import SIGNALS, Reading, Scope
from algora.settings import Settings

__all__ = ["AlertEngine", "Outgoing"]

logger = logging.getLogger(__name__)

_CLAIM_SECONDS = 60.0
"""How long a claimed delivery is another gateway's: longer than any try takes."""


@dataclass(frozen=True)
class Outgoing:
    """A delivery claimed for one try."""

    id: int
    delivery_id: str
    rule_id: int
    resource: str
    url: str
    body: str
    secret: str
    tries: int
    problem: str | None = None
    """Why it cannot be sent (its secret does not open here): the try fails with it."""


class AlertEngine:
    """Evaluates rules and delivers their changes; :meth:`run` is the gateway's loop."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        secrets_: ModelSecrets,
        audit: AuditLog,
        settings: Settings,
        instance: str,
    ) -> None:
        self._sessions = sessions
        self._secrets = secrets_
        self._audit = audit
        self._settings = settings
        self._instance = instance
        self._interval = timedelta(seconds=settings.alert_interval_seconds)

    # evaluation ----------------------------------------------------------------------------
    def evaluate(self) -> int:
        """Evaluate each rule this gateway claims for the round (blocking); the deliveries it
        made."""
        with self._sessions() as session:
            ids = session.scalars(select(AlertRule.id).order_by(AlertRule.id)).all()
        made = 0
        for rule_id in ids:
            try:
                made += self._evaluate_one(rule_id)
            except Exception:  # one rule's failure (a deleted version) stops no other
                logger.exception("could not evaluate alert rule %d", rule_id)
        return made

    def _evaluate_one(self, rule_id: int) -> int:
        now = utcnow()
        with self._sessions() as session:
            claimed = session.execute(
                update(AlertRule)
                .where(
                    AlertRule.id == rule_id,
                    or_(AlertRule.claimed_until.is_(None), AlertRule.claimed_until <= now),
                )
                .values(claimed_by=self._instance, claimed_until=now + self._interval * 0.9)
            )
            session.commit()
            if not getattr(claimed, "rowcount", 0):
                return 0
            rule = session.get(AlertRule, rule_id)
            model = session.get(Model, rule.model_id) if rule is not None else None
            if rule is None or model is None:
                return 0
            reading = self._read(session, rule, model, now)
            change = next_state(
                rule.state,
                breached(
                    Rule(rule.comparison, rule.threshold, rule.min_calls),  # type: ignore[arg-type]
                    reading.value,
                    reading.count,
                ),
            )
            rule.last_value, rule.last_count, rule.evaluated_at = reading.value, reading.count, now
            if change is not None:
                rule.state = change
                session.add(_delivery(rule, model, reading, change, now))
            session.commit()
            return int(change is not None)

    def _read(self, session: Session, rule: AlertRule, model: Model, now: datetime) -> Reading:
        signal = SIGNALS.get(rule.signal)
        if signal is None:  # a signal no longer registered (drift, before its module loads)
            return Reading(None, 0)
        scope = Scope(
            session=session,
            model_id=model.id,
            model=f"{model.owner.name}/{model.name}",
            version=rule.version,
            alias=rule.alias,
            since=now - timedelta(seconds=rule.window_seconds),
            until=now + timedelta(minutes=1),  # the current minute's calls count
        )
        return signal(scope)

    # delivery ------------------------------------------------------------------------------
    def due(self) -> list[Outgoing]:
        """Claim the deliveries whose try is due (blocking)."""
        now = utcnow()
        with self._sessions() as session:
            rows = session.scalars(
                select(AlertDelivery)
                .where(AlertDelivery.status == "pending", AlertDelivery.next_attempt_at <= now)
                .order_by(AlertDelivery.id)
                .limit(50)
            ).all()
            taken: list[Outgoing] = []
            for row in rows:
                claimed = session.execute(
                    update(AlertDelivery)
                    .where(
                        AlertDelivery.id == row.id,
                        AlertDelivery.tries == row.tries,
                        or_(
                            AlertDelivery.claimed_until.is_(None),
                            AlertDelivery.claimed_until <= now,
                        ),
                    )
                    .values(claimed_until=now + timedelta(seconds=_CLAIM_SECONDS))
                )
                session.commit()
                rule = session.get(AlertRule, row.rule_id)
                if getattr(claimed, "rowcount", 0) and rule is not None:
                    taken.append(self._outgoing(session, row, rule))
            return taken

    def _outgoing(self, session: Session, row: AlertDelivery, rule: AlertRule) -> Outgoing:
        model = session.get(Model, rule.model_id)
        name = f"{model.owner.name}/{model.name}" if model is not None else str(rule.model_id)
        secret, problem = "", None
        try:
            secret = self._secrets.open(
                rule.secret_sealed, rule.secret_key_id, secret_context(rule.id, rule.model_id)
            )
        except Unavailable as error:  # another secrets key sealed it: a failed try, said why
            problem = error.message[:200]
        return Outgoing(
            id=row.id,
            delivery_id=row.delivery_id,
            rule_id=rule.id,
            resource=f"alert/{name}/{rule.id}",
            url=rule.webhook_url,
            body=row.body,
            secret=secret,
            tries=row.tries,
            problem=problem,
        )

    def settle(
        self, outgoing: Outgoing, at: datetime, status: int | None, error: str | None
    ) -> str:
        """Keep a try's outcome; schedule the next try or close the delivery (blocking)."""
        delivered = status is not None and 200 <= status < 300
        tries = outgoing.tries + 1
        with self._sessions() as session:
            row = session.get(AlertDelivery, outgoing.id)
            if row is None:  # its rule was deleted meanwhile
                return "gone"
            attempt = {"at": at.isoformat(), "status": status, "error": error}
            row.attempts = [*row.attempts, attempt]
            row.tries = tries
            row.claimed_until = None
            if delivered:
                row.status = "delivered"
            elif tries >= self._settings.alert_max_attempts:
                row.status = "failed"
            else:
                wait = self._settings.alert_retry_seconds * 2 ** (tries - 1)
                row.next_attempt_at = utcnow() + timedelta(seconds=wait)
            session.commit()
            return row.status

    async def send(self, client: httpx.AsyncClient, outgoing: Outgoing) -> None:
        """One try of ``outgoing``: posted, kept, and written to the audit log."""
        started = datetime.now(UTC)
        status: int | None = None
        error: str | None = None
        allowed = self._settings.webhook_allowed_hosts
        host = (urlsplit(outgoing.url).hostname or "").lower()
        body = outgoing.body.encode("utf-8")
        if outgoing.problem is not None:
            error = outgoing.problem
        elif allowed and host not in {h.lower() for h in allowed}:
            error = "host not in ALGORA_WEBHOOK_ALLOWED_HOSTS"
        else:
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "algora-alerts",
                "X-Algora-Signature": sign(outgoing.secret, body),
                "X-Algora-Timestamp": str(int(started.timestamp())),
                "X-Algora-Delivery": outgoing.delivery_id,
            }
            try:
                response = await client.post(outgoing.url, content=body, headers=headers)
                status = response.status_code
            except httpx.HTTPError as failure:
                error = f"{type(failure).__name__}: {str(failure)[:200]}"
        outcome = await asyncio.to_thread(
            self.settle, outgoing, started.replace(tzinfo=None), status, error
        )
        failed = status is None or not 200 <= status < 300
        await self._audit.record(
            AuditEvent(
                action="alert.deliver",
                received_at=started,
                completed_at=datetime.now(UTC),
                status=status if status is not None else 502,
                decision="allow",
                principal="algora-alerts",
                resource=outgoing.resource[:255],
                request_id=outgoing.delivery_id,
                error_code=("webhook_failed" if failed else None),
            )
        )
        if failed:
            logger.warning(
                "alert delivery %s: try %d failed (%s), now %s",
                outgoing.delivery_id, outgoing.tries + 1, error or status, outcome,
            )  # fmt: skip

    async def run(self) -> None:
        """Evaluate every interval and send what is due (every second at most) until
        cancelled; a failed round is logged and retried."""
        tick = min(1.0, self._settings.alert_interval_seconds)
        timeout = httpx.Timeout(self._settings.alert_timeout_seconds)
        last = 0.0
        loop = asyncio.get_running_loop()
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            while True:
                try:
                    if loop.time() - last >= self._settings.alert_interval_seconds:
                        last = loop.time()
                        await asyncio.to_thread(self.evaluate)
                    outgoing = await asyncio.to_thread(self.due)
                    await asyncio.gather(*(self.send(client, o) for o in outgoing))
                except Exception:  # the registry may be briefly unreachable
                    logger.exception("the alert loop's round failed")
                await asyncio.sleep(tick)


def _delivery(
    rule: AlertRule, model: Model, reading: Reading, state: str, now: datetime
) -> AlertDelivery:
    delivery_id = "dlv-" + os.urandom(12).hex()
    body: dict[str, Any] = {
        "delivery_id": delivery_id,
        "rule_id": rule.id,
        "model": f"{model.owner.name}/{model.name}",
        "version": rule.version,
        "alias": rule.alias,
        "signal": rule.signal,
        "comparison": rule.comparison,
        "threshold": rule.threshold,
        "window": window_text(rule.window_seconds),
        "value": reading.value,
        "calls": reading.count,
        "state": state,
        "time": now.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z"),
    }
    return AlertDelivery(
        delivery_id=delivery_id,
        rule_id=rule.id,
        model_id=model.id,
        state=state,
        value=reading.value,
        body=json.dumps(body, separators=(",", ":"), sort_keys=True),
        status="pending",
        tries=0,
        attempts=[],
        created_at=now,
        next_attempt_at=now,
    )
