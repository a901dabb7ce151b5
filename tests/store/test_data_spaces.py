"""The hosted-data spaces as services (``algora.store.spaces``), without HTTP: a real SQLite
registry, the local store on disk and, for connectors, a real S3-compatible server (moto)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.principals import Caller, Delegation
from algora.db.engine import create_registry_engine, make_session_factory
from algora.db.migrate import upgrade
from algora.db.tables import Membership, Model, Principal
from algora.errors import BadRequest, Conflict, NotFound, PermissionDenied
from algora.settings import DataConnector, Settings
from algora.store.connectors import Connectors
from algora.store.data import DataSpaces
from algora.store.spaces import Acl, DataSpace, Folder, Page

from ..s3server import S3Server

CAP = 1024 * 1024


@dataclass
class Registry:
    sessions: sessionmaker[Session]
    settings: Settings
    people: dict[str, Caller]

    def spaces(self, connectors: Connectors | None = None) -> DataSpaces:
        found = connectors or Connectors({}, CAP)
        return DataSpaces(self.settings, self.sessions, found)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    settings = Settings(data_dir=tmp_path / "data", max_data_file_bytes=CAP)
    settings.resolved_data_dir.mkdir(parents=True, mode=0o700)
    engine = create_registry_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    upgrade(engine)
    sessions = make_session_factory(engine)
    with sessions() as session:
        rows = {n: Principal(name=n) for n in ("dora", "otto", "vic", "eve")}
        rows["acme"] = Principal(name="acme", kind="org")
        session.add_all(rows.values())
        session.flush()
        roles = {"otto": "member", "vic": "viewer"}
        for name, role in roles.items():
            session.add(Membership(org_id=rows["acme"].id, member_id=rows[name].id, role=role))
        session.add(Model(owner_id=rows["dora"].id, name="m"))
        session.commit()
        people = {
            name: Caller(
                principal_id=row.id,
                name=name,
                is_admin=False,
                key_id=f"key-{name}",
                scopes=("*",),
                memberships=((rows["acme"].id, roles[name]),) if name in roles else (),
            )
            for name, row in rows.items()
        }
    yield Registry(sessions, settings, people)
    engine.dispose()


def write(space: DataSpace[Any, Any], caller: Caller, path: str, data: bytes) -> str:
    """Write a file as the routes do; the URL the route answers with."""
    target = space.writable(caller, space.locate(caller, path), "put")
    upload = space.start_upload(target)
    upload.write(data)
    upload.commit()
    space.uploaded(target)
    url: str = target.url
    return url


def read(space: DataSpace[Any, Any], caller: Caller, path: str) -> bytes:
    loaded = space.get(caller, space.locate(caller, path), acl=False, marker=None, limit=100)
    assert isinstance(loaded, tuple), loaded
    handle, size = loaded
    try:
        data: bytes = handle.read(size + 1)
    finally:
        handle.close()
    return data


def create(space: DataSpace[Any, Any], caller: Caller, path: str, body: dict[str, Any]) -> str:
    parent = space.writable(caller, space.locate(caller, path), "create")
    target = space.child(parent, body["name"], body)
    space.create(caller, target)
    url: str = target.url
    return url


def listing(space: DataSpace[Any, Any], caller: Caller, path: str, **kw: Any) -> Page:
    where = space.locate(caller, path)
    page = space.get(caller, where, acl=False, marker=kw.get("marker"), limit=kw.get("limit", 100))
    assert isinstance(page, Page)
    return page


# collections --------------------------------------------------------------------------------
def test_a_collection_is_created_written_read_and_deleted_by_its_owner(registry: Registry) -> None:
    space = registry.spaces().collections
    dora = registry.people["dora"]
    assert create(space, dora, ".my", {"name": "notes"}) == "data://dora/notes"
    assert write(space, dora, "dora/notes/a.txt", b"hello") == "data://dora/notes/a.txt"
    assert read(space, dora, ".my/notes/a.txt") == b"hello"
    assert space.kind(dora, space.locate(dora, "dora/notes/a.txt")) == "file"
    page = listing(space, dora, "dora/notes")
    assert [f.name for f in page.files] == ["a.txt"]
    owners = listing(space, dora, "dora")
    assert owners.folders == (Folder("notes", ("algo://.my/*",)),)  # Algorithmia's default
    with pytest.raises(Conflict):
        create(space, dora, "dora", {"name": "notes"})
    target = space.writable(dora, space.locate(dora, "dora/notes"), "delete")
    with pytest.raises(BadRequest, match="not empty"):
        space.delete(target, force=False)
    assert space.delete(target, force=True) == 1
    with pytest.raises(NotFound):
        listing(space, dora, "dora/notes")


def test_strangers_find_nothing_until_the_acl_lets_them_read(registry: Registry) -> None:
    space = registry.spaces().collections
    dora, eve = registry.people["dora"], registry.people["eve"]
    create(space, dora, "dora", {"name": "shared", "acl": {"read": []}})
    write(space, dora, "dora/shared/x", b"x")
    with pytest.raises(NotFound):
        read(space, eve, "dora/shared/x")
    assert listing(space, eve, "dora").folders == ()
    acl_target = space.writable(dora, space.locate(dora, "dora/shared"), "acl")
    assert space.set_acl(dora, acl_target, {"acl": {"read": ["user://*"]}}) == ("user://*",)
    assert read(space, eve, "dora/shared/x") == b"x"
    got = space.get(dora, space.locate(dora, "dora/shared"), acl=True, marker=None, limit=1)
    assert got == Acl(("user://*",))
    with pytest.raises(PermissionDenied):
        space.writable(eve, space.locate(eve, "dora/shared/y"), "put")
    with pytest.raises(PermissionDenied):
        space.writable(eve, space.locate(eve, "dora/shared"), "acl")
    with pytest.raises(BadRequest, match="ACL"):
        space.set_acl(dora, acl_target, {"acl": {"read": ["anyone"]}})


def test_organization_roles_decide_who_writes_and_who_manages(registry: Registry) -> None:
    space = registry.spaces().collections
    otto, vic = registry.people["otto"], registry.people["vic"]
    create(space, otto, "acme", {"name": "team"})  # a member creates the org's collections
    write(space, otto, "acme/team/f", b"f")
    assert read(space, vic, "acme/team/f") == b"f"  # a viewer reads
    with pytest.raises(PermissionDenied):
        space.writable(vic, space.locate(vic, "acme/team/g"), "put")
    with pytest.raises(PermissionDenied):  # deleting a whole collection is for its admins
        space.writable(otto, space.locate(otto, "acme/team"), "delete")
    root = listing(space, otto, "")
    assert [f.name for f in root.folders] == ["otto", "acme"]  # the caller's own name first


def test_key_scopes_narrow_collections(registry: Registry) -> None:
    space = registry.spaces().collections
    dora = registry.people["dora"]
    create(space, dora, "dora", {"name": "open"})
    create(space, dora, "dora", {"name": "closed"})
    narrow = dataclasses.replace(dora, scopes=("data:read:dora/open",))
    assert [f.name for f in listing(space, narrow, "dora").folders] == ["open"]
    with pytest.raises(PermissionDenied):
        listing(space, narrow, "dora/closed")
    with pytest.raises(PermissionDenied):
        space.writable(narrow, space.locate(narrow, "dora/open/f"), "put")


def test_paths_are_checked_before_anything_is_looked_up(registry: Registry) -> None:
    space = registry.spaces().collections
    dora = registry.people["dora"]
    for bad in ("dora/notes/../x", "dora/.hidden", "dora/notes/a\\b", "dora//x"):
        with pytest.raises(BadRequest):
            space.locate(dora, bad)
    with pytest.raises(BadRequest, match="inside a collection"):
        space.writable(dora, space.locate(dora, ""), "put")


def test_views_are_frozen(registry: Registry) -> None:
    page = listing(registry.spaces().collections, registry.people["dora"], "")
    with pytest.raises(dataclasses.FrozenInstanceError):
        page.marker = "x"  # type: ignore[misc]  # the point: it cannot be assigned


# a model's own space and a call tree's -------------------------------------------------------
def _inside(caller: Caller, model: str, session: str | None = "s1") -> Caller:
    delegation = Delegation(
        bounds=(caller,), model=model, model_owner_id=caller.principal_id, session=session
    )
    return dataclasses.replace(caller, delegation=delegation)


def test_a_models_own_space_from_inside_and_outside(registry: Registry) -> None:
    algo = registry.spaces().algo
    dora, eve = registry.people["dora"], registry.people["eve"]
    code = _inside(eve, "dora/m")  # the model's code, whoever called it
    assert write(algo, code, "/perm/kept.txt", b"k") == "data://.algo/dora/m/perm/kept.txt"
    assert read(algo, dora, "/dora/m/perm/kept.txt") == b"k"  # its owner manages it
    root = listing(algo, dora, "/dora/m")
    assert [f.name for f in root.folders] == ["perm", "temp"]  # always there
    with pytest.raises(NotFound):
        read(algo, eve, "/dora/m/perm/kept.txt")  # from outside, only managers
    with pytest.raises(BadRequest, match="only model code"):
        algo.locate(dora, "/temp/x")
    with pytest.raises(NotFound, match="temp/ and perm/"):
        algo.locate(dora, "/dora/m/other/x")
    with pytest.raises(BadRequest, match="inside temp/ or perm/"):
        algo.writable(dora, algo.locate(dora, "/dora/m/perm"), "put")
    with pytest.raises(BadRequest, match="no ACL"):
        algo.writable(dora, algo.locate(dora, "/dora/m"), "acl")
    got = algo.get(dora, algo.locate(dora, "/dora/m"), acl=True, marker=None, limit=1)
    assert got == Acl(None)
    assert create(algo, dora, "/dora/m/temp", {"name": "sub"}) == "data://.algo/dora/m/temp/sub"


def test_a_call_trees_scratch_space_is_only_for_model_code(registry: Registry) -> None:
    scratch = registry.spaces().session
    dora = registry.people["dora"]
    with pytest.raises(PermissionDenied, match="only model code"):
        scratch.locate(dora, "/x")
    code = _inside(dora, "dora/m", session="tree-1")
    assert write(scratch, code, "/a/b.txt", b"b") == "data://.session/a/b.txt"
    assert read(scratch, code, "/a/b.txt") == b"b"
    other = _inside(dora, "dora/m", session="tree-2")
    assert listing(scratch, other, "").files == ()  # each tree its own
    target = scratch.writable(code, scratch.locate(code, "/a"), "delete")
    assert scratch.delete(target, force=True) == 1


# S3 connectors --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with S3Server(tmp_path_factory.mktemp("spaces-s3")) as server:
        for bucket in ("lake-data", "vault-data"):
            server.client().create_bucket(Bucket=bucket)
        yield server


def test_connectors_serve_readers_and_writers_as_the_admin_listed(
    registry: Registry, s3: S3Server
) -> None:
    configs = {
        "lake": s3.connector(["lake-data"], readers=["acme"], writers=["dora"]),
        "vault": s3.connector(["vault-data"], readers=["dora"]),
    }
    connectors = {name: DataConnector.model_validate(c) for name, c in configs.items()}
    space = registry.spaces(Connectors(connectors, CAP)).connectors
    dora, otto, eve = (registry.people[n] for n in ("dora", "otto", "eve"))
    assert write(space, dora, "s3://lake-data/dir/f.txt", b"s3!") == "s3://lake-data/dir/f.txt"
    target = space.writable(dora, space.locate(dora, "s3://lake-data/dir/g"), "put")
    assert target.audit_url == "s3+lake://lake-data/dir/g"  # which connector served it
    assert read(space, otto, "s3://lake-data/dir/f.txt") == b"s3!"  # an org that reads
    assert [f.name for f in listing(space, otto, "s3://lake-data/dir").files] == ["f.txt"]
    assert [f.name for f in listing(space, dora, "s3://").folders] == ["lake-data", "vault-data"]
    with pytest.raises(PermissionDenied, match="may read but not write"):
        space.writable(otto, space.locate(otto, "s3://lake-data/x"), "put")
    with pytest.raises(NotFound):
        read(space, eve, "s3://lake-data/dir/f.txt")
    with pytest.raises(BadRequest, match="no ACLs"):
        space.writable(dora, space.locate(dora, "s3://lake-data/dir"), "acl")
    with pytest.raises(NotFound):
        space.locate(dora, "ftp://lake-data/x")
    gone = space.writable(dora, space.locate(dora, "s3://lake-data/dir"), "delete")
    assert space.delete(gone, force=True) == 1
