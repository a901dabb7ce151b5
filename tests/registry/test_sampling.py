"""Payload sampling's services on each registry database: a rule of rate 1 samples every call
and no rule none, payloads are redacted at any depth and cut at the cap, and pruning removes
the expired samples' objects and rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.principals import Caller
from algora.db.sampling import PayloadSample
from algora.db.tables import Model, Version
from algora.errors import InvalidInput, NotFound, PermissionDenied
from algora.registry.sample_payloads import REDACTED, redact, stored_payload
from algora.registry.sampler import Sampler
from algora.registry.sampling import Sampling
from algora.registry.service import Registry
from algora.store.local import LocalBlobStore
from algora.workers.spec import CallResult

from ..conftest import DATABASES, database_url
from .conftest import migrated, owned_model


@dataclass(frozen=True)
class Answered:
    caller: Caller
    spec: str | None = None
    shadow_of: str = ""


@dataclass
class World:
    sessions: sessionmaker[Session]
    store: LocalBlobStore
    owner: Caller
    model: Model
    version: Version
    sampler: Sampler
    sampling: Sampling

    def call(self, request_id: str, value: Any) -> None:
        payload = json.dumps(value).encode()
        answer = CallResult(content_type="json", payload=payload, stdout="", duration=0)
        self.sampler.offer(
            Answered(self.owner), self.model, self.version, request_id, "json", payload,
            answer, None,
        )  # fmt: skip

    def rows(self) -> list[PayloadSample]:
        with self.sessions() as session:
            return list(session.scalars(select(PayloadSample).order_by(PayloadSample.id)))


@pytest.fixture(params=DATABASES)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    with database_url(request.param) as url, migrated(url, tmp_path) as sessions:
        with sessions() as session:
            olga, model = owned_model(session, "olga", "m")
            version = Version(model_id=model.id, major=1, minor=0, patch=0, manifest={})
            session.add(version)
            session.commit()
            session.refresh(model)
            _ = model.owner.name
        store = LocalBlobStore(tmp_path / "blobs")
        sampler = Sampler(sessions, store, retention_days=7)
        sampling = Sampling(sessions, Registry(sessions), store, sampler)
        owner = Caller(olga.id, "olga", False, "k1", ("*",))
        yield World(sessions, store, owner, model, version, sampler, sampling)


def test_no_rule_samples_nothing_and_rate_one_samples_every_call(world: World) -> None:
    for number in range(5):
        world.call(f"req-off-{number}", {"n": number})
    world.sampler.write()
    assert world.rows() == []
    world.sampling.set_rule(world.owner, "olga", "m", 1.0, 1024, [], True)
    for number in range(20):
        world.call(f"req-on-{number}", {"n": number})
    world.sampler.write()
    assert [row.request_id for row in world.rows()] == [f"req-on-{n}" for n in range(20)]
    listed = world.sampling.samples(world.owner, "olga", "m", None, None, "1.0.0", 1000)
    assert [s.request_id for s in listed] == [f"req-on-{n}" for n in reversed(range(20))]
    assert world.sampling.samples(world.owner, "olga", "m", None, None, "2.0.0", 10) == []
    world.sampling.set_rule(world.owner, "olga", "m", 1.0, 1024, [], False)
    world.call("req-disabled", {})
    world.sampler.write()
    assert len(world.rows()) == 20


def test_a_full_queue_drops_and_counts(world: World) -> None:
    sampler = Sampler(world.sessions, world.store, retention_days=7, max_pending=3)
    world.sampler = sampler
    world.sampling = Sampling(world.sessions, Registry(world.sessions), world.store, sampler)
    world.sampling.set_rule(world.owner, "olga", "m", 1.0, 1024, [], True)
    for number in range(5):
        world.call(f"req-{number}", number)
    sampler.write()
    assert sampler.counts() == (3, 2)


def test_payloads_are_redacted_at_any_depth_then_cut(world: World) -> None:
    world.sampling.set_rule(world.owner, "olga", "m", 1.0, 60, ["ssn"], True)
    world.call("req-deep", {"a": [{"b": {"ssn": "123-45-6789"}}], "ssn": 1})
    world.call("req-long", {"text": "y" * 200, "ssn": "987-65-4321"})
    world.sampler.write()
    deep = world.sampling.sample(world.owner, "olga", "m", "req-deep")
    assert deep.input["data"] == {"a": [{"b": {"ssn": REDACTED}}], "ssn": REDACTED}
    assert deep.sample.truncated is False
    long = world.sampling.sample(world.owner, "olga", "m", "req-long")
    assert long.sample.truncated is True and long.input["truncated"] is True
    assert len(long.input["data"].encode()) <= 60
    stored = b"".join(p.read_bytes() for p in (world.store.root / "objects").rglob("*.json"))
    assert b"123-45-6789" not in stored and b"987-65-4321" not in stored


def test_stored_payload_kinds() -> None:
    assert redact([{"k": {"k": 1}}], {"k"}) == [{"k": REDACTED}]
    text = stored_payload("text", b"hello world", 5, set())
    assert (text["data"], text["truncated"], text["bytes"]) == ("hello", True, 11)
    binary = stored_payload("binary", b"\x00\x01\x02", 2, set())
    assert (binary["encoding"], binary["data"], binary["truncated"]) == ("base64", "AAE=", True)
    withheld = stored_payload("json", b"{not json", 100, {"ssn"})
    assert withheld["encoding"] == "withheld" and withheld["data"] is None


def test_pruning_removes_expired_objects_and_rows(world: World) -> None:
    world.sampling.set_rule(world.owner, "olga", "m", 1.0, 1024, [], True)
    world.call("req-old", {"old": True})
    world.call("req-new", {"new": True})
    world.sampler.write()
    with world.sessions() as session:
        session.execute(
            update(PayloadSample)
            .where(PayloadSample.request_id == "req-old")
            .values(created_at=datetime.now(UTC).replace(tzinfo=None) - timedelta(days=8))
        )
        session.commit()
    old_key = next(row.key for row in world.rows() if row.request_id == "req-old")
    assert world.store.get_object(old_key)
    assert world.sampler.prune() == 1
    assert [row.request_id for row in world.rows()] == ["req-new"]
    with pytest.raises(NotFound):
        world.store.get_object(old_key)
    with pytest.raises(NotFound):
        world.sampling.sample(world.owner, "olga", "m", "req-old")
    assert world.sampling.sample(world.owner, "olga", "m", "req-new").input["data"] == {"new": True}


def test_rules_are_checked_and_kept_to_managers(world: World) -> None:
    for rate, cap in ((0.0, 10), (1.01, 10), (0.5, 0)):
        with pytest.raises(InvalidInput):
            world.sampling.set_rule(world.owner, "olga", "m", rate, cap, [], True)
    with world.sessions() as session:
        model = session.get(Model, world.model.id)
        assert model is not None
        model.visibility = "public"
        session.commit()
    stranger = Caller(world.owner.principal_id + 999, "stranger", False, "k2", ("*",))
    with pytest.raises(PermissionDenied):
        world.sampling.rule(stranger, "olga", "m")


def test_object_keys_never_leave_the_store(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    for key in ("../x", "samples/../../x", "samples//x", "/samples/x", "samples/.x", "samples"):
        with pytest.raises(NotFound):
            store.put_object(key, b"x")
    store.put_object("samples/1/x.json", b"ok")
    assert store.get_object("samples/1/x.json") == b"ok"
    store.delete_object("samples/1/x.json")
    assert not (tmp_path / "blobs" / "objects" / "samples").exists()
