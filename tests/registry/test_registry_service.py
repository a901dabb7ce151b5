"""The services under the adapters, against a real SQLite registry: the catalog of models and
versions, model secrets as their managers see them, and audit queries."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from algora.audit.log import AuditLog
from algora.audit.queries import AuditFilter, AuditQueries
from algora.audit.related import follow_up
from algora.auth.principals import Caller
from algora.db.engine import create_registry_engine, make_session_factory
from algora.db.migrate import upgrade
from algora.db.tables import Environment, Model, Principal
from algora.errors import (
    BadRequest,
    ModelNotFound,
    NotFound,
    PermissionDenied,
    VersionNotFound,
)
from algora.publishing.logs import BuildLogs
from algora.registry.catalog import Catalog
from algora.registry.secrets import ManagedSecrets, ModelSecrets
from algora.registry.service import Registry
from algora.settings import Settings
from algora.store.local import LocalBlobStore


@dataclasses.dataclass
class World:
    sessions: sessionmaker[Session]
    registry: Registry
    catalog: Catalog
    store: LocalBlobStore
    logs: BuildLogs
    secrets: ManagedSecrets
    audit: AuditQueries
    owner: Caller
    stranger: Caller
    admin: Caller
    model_id: int


def _caller(principal_id: int, name: str, *, is_admin: bool = False) -> Caller:
    return Caller(
        principal_id=principal_id, name=name, is_admin=is_admin, key_id=f"k-{name}", scopes=("*",)
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    settings = Settings(data_dir=tmp_path, audit_enabled=True)
    engine = create_registry_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    upgrade(engine)
    sessions = make_session_factory(engine)
    with sessions() as session:
        people = [Principal(name=n, kind="user", is_admin=n == "root") for n in ("ann", "bob")]
        people.append(Principal(name="root", kind="user", is_admin=True))
        session.add_all(people)
        session.flush()
        model = Model(owner_id=people[0].id, name="hello", description="says hello")
        session.add(model)
        session.commit()
        ids = [p.id for p in people]
        model_id = model.id
    registry = Registry(sessions)
    store = LocalBlobStore(tmp_path / "blobs")
    logs = BuildLogs(tmp_path / "logs" / "builds")
    audit_log = AuditLog(sessions, enabled=True)
    yield World(
        sessions=sessions,
        registry=registry,
        catalog=Catalog(sessions, registry, store, logs.read),
        store=store,
        logs=logs,
        secrets=ManagedSecrets(sessions, ModelSecrets(settings, sessions)),
        audit=AuditQueries(sessions, audit_log),
        owner=_caller(ids[0], "ann"),
        stranger=_caller(ids[1], "bob"),
        admin=_caller(ids[2], "root", is_admin=True),
        model_id=model_id,
    )
    engine.dispose()


def _version(world: World, semver: str, *, ready: bool = True, deprecated: bool = False) -> int:
    version = world.registry.create_version(
        world.model_id,
        bump=None,
        exact=semver,
        manifest={"model": {"entrypoint": "model:hello"}},
        lineage={"git": {"commit": "abc"}},
        published_by=world.owner.principal_id,
    )
    digest = f"{version.id:02d}" + "f" * 62
    if ready:
        world.registry.mark_ready(version.id, content_hash=digest, deprecated=deprecated)
    else:
        world.registry.update_version(version.id, status="failed", failure_reason="broken")
    return version.id


# models -------------------------------------------------------------------------------------
def test_a_private_model_does_not_exist_for_a_stranger(world: World) -> None:
    assert [m.full_name for m in world.catalog.list_models(world.owner)] == ["ann/hello"]
    assert world.catalog.list_models(world.stranger) == []
    with pytest.raises(ModelNotFound):
        world.catalog.get_model(world.stranger, "ann", "hello")
    view = world.catalog.get_model(world.owner, "ann", "hello")
    assert (view.owner, view.name, view.description) == ("ann", "hello", "says hello")
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.name = "other"  # type: ignore[misc]  # the point: views are frozen


def test_updating_a_model_needs_manage_and_changes_only_what_is_given(world: World) -> None:
    with pytest.raises(ModelNotFound):
        world.catalog.update_model(world.stranger, "ann", "hello", visibility="public")
    view = world.catalog.update_model(world.owner, "ann", "hello", visibility="public")
    assert (view.visibility, view.description) == ("public", "says hello")
    # public: the stranger may read (and call) it now, but still not manage it
    assert world.catalog.get_model(world.stranger, "ann", "hello").visibility == "public"
    with pytest.raises(PermissionDenied):
        world.catalog.update_model(world.stranger, "ann", "hello", description="mine")
    with pytest.raises(PermissionDenied):
        world.catalog.require(world.stranger, "ann", "hello", "manage")
    assert world.catalog.require(world.owner, "ann", "hello", "manage").id == world.model_id


# versions -----------------------------------------------------------------------------------
def test_versions_list_highest_first_and_filter(world: World) -> None:
    _version(world, "1.0.0")
    _version(world, "1.1.0", deprecated=True)
    _version(world, "2.0.0", ready=False)
    catalog, owner = world.catalog, world.owner
    assert [v.semver for v in catalog.list_versions(owner, "ann", "hello")] == [
        "2.0.0",
        "1.1.0",
        "1.0.0",
    ]
    assert [v.semver for v in catalog.list_versions(owner, "ann", "hello", ready=True)] == [
        "1.1.0",
        "1.0.0",
    ]
    assert [v.semver for v in catalog.list_versions(owner, "ann", "hello", is_callable=False)] == [
        "2.0.0",
        "1.1.0",
    ]
    below = catalog.list_versions(owner, "ann", "hello", below=(1, 1, 0))
    assert [v.semver for v in below] == ["1.0.0"]
    assert below[0].model == "ann/hello" and below[0].entrypoint == "model:hello"


def test_describe_names_the_latest_callable_version(world: World) -> None:
    model, latest = world.catalog.describe(world.owner, "ann", "hello")
    assert model.full_name == "ann/hello" and latest is None
    _version(world, "1.0.0")
    _version(world, "1.1.0", deprecated=True)
    _version(world, "2.0.0", ready=False)
    _model, latest = world.catalog.describe(world.owner, "ann", "hello")
    assert latest is not None and latest.semver == "1.0.0" and latest.callable


def test_a_version_is_found_by_hash_prefix_or_exact_semver(world: World) -> None:
    first = _version(world, "1.0.0")
    _version(world, "1.1.0")
    found = world.catalog.find_version(world.owner, "ann", "hello", f"{first:02d}ffffffffffff")
    assert found.semver == "1.0.0"
    assert world.catalog.find_version(world.owner, "ann", "hello", "1.1.0").id != first
    with pytest.raises(BadRequest):
        world.catalog.find_version(world.owner, "ann", "hello", "latest")
    with pytest.raises(VersionNotFound):
        world.catalog.find_version(world.owner, "ann", "hello", "3.0.0")
    with pytest.raises(ModelNotFound):
        world.catalog.find_version(world.stranger, "ann", "hello", "1.0.0")


def test_deprecating_a_version_needs_manage(world: World) -> None:
    _version(world, "1.0.0")
    world.catalog.update_model(world.owner, "ann", "hello", visibility="public")
    with pytest.raises(PermissionDenied):
        world.catalog.deprecate_version(world.stranger, "ann", "hello", "1.0.0", True)
    view = world.catalog.deprecate_version(world.owner, "ann", "hello", "1.0.0", True)
    assert view.deprecated and not view.callable


def test_what_a_version_was_built_from(world: World, tmp_path: Path) -> None:
    version_id = _version(world, "1.0.0")
    catalog, owner = world.catalog, world.owner
    with pytest.raises(NotFound, match="no environment"):
        catalog.lock(owner, "ann", "hello", "1.0.0")
    with pytest.raises(NotFound, match="no SBOM"):
        catalog.sbom(owner, "ann", "hello", "1.0.0")
    sbom = tmp_path / "sbom.json"
    sbom.write_bytes(b'{"bomFormat": "CycloneDX"}')
    digest = world.store.put_file(sbom)
    with world.sessions() as session:
        session.add(Environment(hash="e" * 64, python_version="3.11", lock="numpy==2.0\n"))
        session.commit()
    world.registry.update_version(
        version_id,
        environment_hash="e" * 64,
        lineage={"git": {"commit": "abc"}, "sbom": digest},
        build_log="==> ready\n",
    )
    assert catalog.lock(owner, "ann", "hello", "1.0.0") == "numpy==2.0\n"
    assert catalog.sbom(owner, "ann", "hello", "1.0.0") == b'{"bomFormat": "CycloneDX"}'
    lineage = catalog.lineage(owner, "ann", "hello", "1.0.0")
    assert lineage["environment_hash"] == "e" * 64 and lineage["git"] == {"commit": "abc"}
    log = catalog.build_log(owner, "ann", "hello", "1.0.0")
    assert (log.text, log.offset, log.done) == ("==> ready\n", 10, True)
    assert catalog.build_log(owner, "ann", "hello", "1.0.0", offset=10).text == ""
    with pytest.raises(ModelNotFound):
        catalog.build_log(world.stranger, "ann", "hello", "1.0.0")


def test_a_building_version_shows_its_live_log(world: World) -> None:
    version = world.registry.create_version(
        world.model_id,
        bump="minor",
        exact=None,
        manifest={},
        lineage={},
        published_by=world.owner.principal_id,
    )
    world.logs.writer(version.id)("==> locking")
    log = world.catalog.build_log(world.owner, "ann", "hello", version.semver)
    assert log.status == "building" and not log.done and "==> locking" in log.text
    later = world.catalog.build_log(world.owner, "ann", "hello", version.semver, log.offset)
    assert later.text == "" and later.offset == log.offset


# secrets ------------------------------------------------------------------------------------
def test_only_managers_set_and_list_a_models_secrets(world: World) -> None:
    first = _version(world, "1.0.0")
    secrets = world.secrets
    with pytest.raises(ModelNotFound):
        secrets.model(world.stranger, world.model_id)
    with pytest.raises(ModelNotFound):
        secrets.model(world.owner, 10**6)
    world.catalog.update_model(world.owner, "ann", "hello", visibility="public")
    with pytest.raises(PermissionDenied, match="so not its secrets"):
        secrets.set_secret(
            world.stranger, world.model_id, "TOKEN", "x", short_name="t", description=""
        )
    with pytest.raises(PermissionDenied):
        secrets.list_secrets(world.stranger, world.model_id)
    assert secrets.model(world.owner, world.model_id).full_name == "ann/hello"
    change = secrets.set_secret(
        world.owner, world.model_id, "TOKEN", "s3cret", short_name="token", description="api"
    )
    assert change.created and change.version_keys == (str(first),)
    again = secrets.set_secret(
        world.admin, world.model_id, "TOKEN", "other", short_name="token", description="api"
    )
    assert not again.created and again.info.id == change.info.id
    listed = secrets.list_secrets(world.owner, world.model_id)
    assert [(s.env_name, s.short_name) for s in listed] == [("TOKEN", "token")]
    assert "other" not in repr(listed)


# audit queries ------------------------------------------------------------------------------
def _record(world: World, request_id: str, principal: Caller) -> None:
    event = follow_up(
        "alias.move",
        resource="ann/hello",
        version="production:->1.0.0",
        request_id=request_id,
        principal=principal.name,
        principal_id=principal.principal_id,
        key_id=principal.key_id,
        auth_method="simple",
        peer="127.0.0.1",
        forwarded_for=None,
    )
    AuditLog(world.sessions, enabled=True).record_sync(event)


def test_audit_reads_need_the_audit_scope(world: World) -> None:
    with pytest.raises(PermissionDenied, match="audit:read"):
        asyncio.run(world.audit.page(world.owner, AuditFilter()))
    with pytest.raises(PermissionDenied):
        asyncio.run(world.audit.verify(world.owner))


def test_audit_pages_export_and_verify(world: World) -> None:
    for n in range(3):
        _record(world, f"req-{n}", world.owner if n != 1 else world.stranger)
    audit, admin = world.audit, world.admin
    first = asyncio.run(audit.page(admin, AuditFilter(), limit=2))
    assert [e["request_id"] for e in first.events] == ["req-2", "req-1"]
    assert first.cursor == first.events[-1]["id"]
    rest = asyncio.run(audit.page(admin, AuditFilter(), limit=2, before=first.cursor))
    assert [e["request_id"] for e in rest.events] == ["req-0"] and rest.cursor is None
    mine = asyncio.run(audit.page(admin, AuditFilter(principal="bob")))
    assert [e["request_id"] for e in mine.events] == ["req-1"]
    lines = b"".join(asyncio.run(audit.export(admin, AuditFilter(model="ann/hello"))))
    assert lines.count(b"\n") == 3 and lines.index(b"req-0") < lines.index(b"req-2")
    report = asyncio.run(audit.verify(admin))
    assert report["ok"] and report["rows"] == 3 and report["anchor"]
    assert asyncio.run(audit.verify(admin, report["anchor"]))["ok"]
    with pytest.raises(BadRequest, match="anchor"):
        asyncio.run(audit.verify(admin, "not-an-anchor"))
