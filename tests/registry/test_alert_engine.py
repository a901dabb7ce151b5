"""The alert loop on each registry database: one gateway evaluates a rule a round, a rule
fires once on the move to a breach and resolves once on the way back, too few calls change
nothing, and deliveries are claimed by one gateway and retried until they run out of tries."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from algora.audit.log import AuditLog
from algora.auth.principals import Caller
from algora.db.alerting import AlertDelivery, AlertRule
from algora.db.shared_state import CallStats
from algora.db.tables import Version
from algora.errors import InvalidInput, NotFound, PermissionDenied
from algora.registry.alert_engine import AlertEngine
from algora.registry.alerts import AlertRules, RuleRequest
from algora.registry.rollups import BUCKET_COLUMNS, ERROR_COLUMNS
from algora.registry.secrets import ModelSecrets
from algora.registry.service import Registry
from algora.settings import Settings

from ..conftest import DATABASES, database_url
from .conftest import migrated, owned_model

INTERVAL = 0.2


@dataclass
class World:
    sessions: sessionmaker[Session]
    rules: AlertRules
    gateways: tuple[AlertEngine, AlertEngine]
    olga: Caller
    model_id: int
    version_id: int
    secrets: ModelSecrets
    settings: Settings


@pytest.fixture(params=DATABASES)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """olga/m 1.0.0 on a fresh registry, and two gateways' alert loops on it."""
    settings = Settings(
        data_dir=tmp_path / "data", alert_interval_seconds=INTERVAL, alert_max_attempts=3
    )
    settings.resolved_data_dir.mkdir(mode=0o700)
    with (
        database_url(request.param) as url,
        migrated(url, tmp_path) as sessions,
        sessions() as session,
    ):
        olga, model = owned_model(session, "olga", "m")
        version = Version(model_id=model.id, major=1, minor=0, patch=0, status="ready")
        session.add(version)
        session.commit()
        secrets = ModelSecrets(settings, sessions)
        audit = AuditLog(sessions, enabled=False)
        yield World(
            sessions,
            AlertRules(sessions, Registry(sessions), secrets, []),
            (
                AlertEngine(sessions, secrets, audit, settings, "gw-a"),
                AlertEngine(sessions, secrets, audit, settings, "gw-b"),
            ),
            Caller(olga.id, "olga", False, "k1", ("*",)),
            model.id,
            version.id,
            secrets,
            settings,
        )


def _calls(world: World, minutes_ago: int, calls: int, errors: int) -> None:
    minute = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0)
    with world.sessions() as session:
        counts = dict.fromkeys((*ERROR_COLUMNS, *BUCKET_COLUMNS, "bytes_in", "bytes_out"), 0)
        session.add(
            CallStats(
                version_id=world.version_id,
                minute=minute - timedelta(minutes=minutes_ago),
                model_id=world.model_id,
                calls=calls,
                latency_sum=calls * 0.01,
                **{**counts, "model_errors": errors, "le_10ms": calls},
            )
        )
        session.commit()


def _round(world: World) -> int:
    """One round on both gateways, once the last round's claims lapsed."""
    time.sleep(INTERVAL)
    return sum(gateway.evaluate() for gateway in world.gateways)


def _deliveries(world: World) -> list[AlertDelivery]:
    with world.sessions() as session:
        return list(session.scalars(select(AlertDelivery).order_by(AlertDelivery.id)).all())


def _add(world: World, **changes: object) -> int:
    fields: dict[str, object] = {
        "signal": "error_rate", "comparison": "above", "threshold": 0.5, "window": "5m",
        "webhook": "https://hooks.example.com/x", "version": "1.0.0", "min_calls": 3,
        **changes,
    }  # fmt: skip
    return world.rules.add(world.olga, "olga", "m", RuleRequest(**fields)).rule.id  # type: ignore[arg-type]


def test_one_gateway_evaluates_a_rule_a_round(world: World) -> None:
    rule_id = _add(world)
    first, second = world.gateways
    first.evaluate()
    with world.sessions() as session:
        rule = session.get(AlertRule, rule_id)
        assert rule is not None and rule.claimed_by == "gw-a"
        evaluated = rule.evaluated_at
    second.evaluate()  # the round is gw-a's
    with world.sessions() as session:
        rule = session.get(AlertRule, rule_id)
        assert rule is not None and (rule.claimed_by, rule.evaluated_at) == ("gw-a", evaluated)


def test_a_rule_fires_once_and_resolves_once_and_waits_for_enough_calls(world: World) -> None:
    rule_id = _add(world)
    _calls(world, 1, calls=2, errors=2)
    assert _round(world) == 0  # two failed calls of two: fewer than min_calls
    _calls(world, 2, calls=2, errors=2)
    assert _round(world) == 1
    assert _round(world) == 0  # still firing: no repeat
    _calls(world, 3, calls=20, errors=0)
    assert _round(world) == 1
    firing, resolved = _deliveries(world)
    assert (firing.state, resolved.state) == ("firing", "resolved")
    body = json.loads(firing.body)
    assert body["value"] == 1.0 and body["calls"] == 4 and body["rule_id"] == rule_id
    assert json.loads(resolved.body)["value"] == pytest.approx(4 / 24)
    [listed] = world.rules.rules(world.olga, "olga", "m")
    assert listed.state == "resolved" and listed.last_count == 24


def test_deliveries_are_claimed_once_and_retried_until_they_fail(world: World) -> None:
    rule_id = _add(world, min_calls=1)
    _calls(world, 0, calls=1, errors=1)
    assert _round(world) == 1
    first, second = world.gateways
    [outgoing] = first.due()
    assert second.due() == []  # claimed by gw-a for its try
    now = datetime.now(UTC).replace(tzinfo=None)
    assert first.settle(outgoing, now, 500, None) == "pending"
    assert first.due() == []  # the retry waits
    [delivery] = _deliveries(world)
    assert delivery.tries == 1 and delivery.next_attempt_at > now
    with world.sessions() as session:  # the wait is over
        row = session.get(AlertDelivery, delivery.id)
        assert row is not None
        row.next_attempt_at = now
        session.commit()
    [again] = second.due()
    assert again.body == outgoing.body and again.secret == outgoing.secret
    assert second.settle(again, now, None, "ConnectError: refused") == "pending"
    shown = world.rules.deliveries(world.olga, "olga", "m", rule_id)
    assert [(a.status_code, a.error) for a in shown[0].attempts] == [
        (500, None), (None, "ConnectError: refused"),
    ]  # fmt: skip
    assert first.settle(replace(again, tries=2), now, 503, None) == "failed"


def test_rules_are_checked_and_kept_to_managers(world: World) -> None:
    with pytest.raises(InvalidInput, match="unknown signal"):
        _add(world, signal="psychic")
    with pytest.raises(NotFound, match="no version"):
        _add(world, version="9.9.9")
    with pytest.raises(NotFound, match="no alias"):
        _add(world, version=None, alias="prod")
    stranger = Caller(999, "sam", False, "k2", ("*",))
    with pytest.raises((NotFound, PermissionDenied)):
        world.rules.rules(stranger, "olga", "m")
    request = RuleRequest("p99_ms", "above", 250.0, "1h", "https://hooks.example.com/x")
    added = world.rules.add(world.olga, "olga", "m", request)
    assert len(added.secret) >= 32  # made by the server, shown this once
    with world.sessions() as session:
        rule = session.get(AlertRule, added.rule.id)
        assert rule is not None and rule.secret_key_id
        assert added.secret not in rule.secret_sealed  # sealed, not stored as given


def test_a_delivery_to_a_host_the_operator_did_not_allow_is_not_sent(world: World) -> None:
    _add(world, min_calls=1)
    _calls(world, 0, calls=1, errors=1)
    assert _round(world) == 1
    settings = world.settings.model_copy(update={"webhook_allowed_hosts": ["hooks.internal"]})
    audit = AuditLog(world.sessions, enabled=False)
    strict = AlertEngine(world.sessions, world.secrets, audit, settings, "gw-c")
    [outgoing] = strict.due()

    async def send() -> None:
        async with httpx.AsyncClient() as client:
            await strict.send(client, outgoing)

    asyncio.run(send())
    [delivery] = _deliveries(world)
    assert delivery.status == "pending" and delivery.tries == 1
    [attempt] = delivery.attempts
    assert attempt["status"] is None and "ALGORA_WEBHOOK_ALLOWED_HOSTS" in attempt["error"]
