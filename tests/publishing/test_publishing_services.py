"""The publishing services' rules, on a real platform (SQLite, local store, git): uploads of
archives, model repositories and their builds. Building itself is covered end to end by the
API and Algorithmia client tests."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from algora.auth.principals import Caller
from algora.db.tables import Principal
from algora.errors import (
    BadRequest,
    Conflict,
    ModelNotFound,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
)
from algora.platform import Platform
from algora.registry.sources import python3_template
from algora.settings import Settings


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    platform = Platform.open(Settings(data_dir=tmp_path, max_archive_bytes=1024))
    try:
        yield platform
    finally:
        asyncio.run(platform.aclose())


def _user(platform: Platform, name: str) -> Caller:
    with platform.sessions() as session:
        row = Principal(name=name, kind="user")
        session.add(row)
        session.commit()
        return Caller(principal_id=row.id, name=name, is_admin=False, key_id=name, scopes=("*",))


# uploads ------------------------------------------------------------------------------------
def test_an_upload_is_refused_before_its_first_byte(platform: Platform) -> None:
    ann, bob = _user(platform, "ann"), _user(platform, "bob")
    with pytest.raises(BadRequest, match="either bump or version"):
        platform.uploads.begin(ann, "ann", "hello", bump="minor", exact="1.0.0")
    with pytest.raises(ModelNotFound):  # a new model of another owner: nobody's to see
        platform.uploads.begin(bob, "ann", "hello")
    with pytest.raises(NotFound, match="owner 'nobody'"):
        platform.uploads.begin(ann, "nobody", "hello")
    staging = platform.settings.resolved_data_dir / "staging"
    assert list(staging.iterdir()) == []


def test_an_upload_is_capped_and_an_empty_one_refused(platform: Platform) -> None:
    ann = _user(platform, "ann")
    upload = platform.uploads.begin(ann, "ann", "hello")
    try:
        upload.write(b"x" * 1000)
        assert (upload.path.stat().st_mode & 0o077) == 0  # owner-only
        with pytest.raises(PayloadTooLarge, match="1024-byte limit"):
            upload.write(b"x" * 100)
    finally:
        upload.discard()
    assert not upload.path.exists()
    empty = platform.uploads.begin(ann, "ann", "hello")
    try:
        with pytest.raises(BadRequest, match="body is empty"):
            platform.uploads.publish(ann, empty)
    finally:
        empty.discard()


# repositories and builds --------------------------------------------------------------------
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@needs_git
def test_a_created_repository_and_its_builds(platform: Platform) -> None:
    ann, bob = _user(platform, "ann"), _user(platform, "bob")
    template = python3_template("hello", summary="greets", owner="ann")
    with pytest.raises(ModelNotFound):
        platform.sources.create(bob, "ann", "hello", summary="", template=template)
    model = platform.sources.create(ann, "ann", "hello", summary="greets", template=template)
    assert (model.full_name, model.description) == ("ann/hello", "greets")
    with pytest.raises(Conflict, match="already exists"):
        platform.sources.create(ann, "ann", "hello", summary="", template=template)
    assert platform.sources.branch(ann, "ann", "hello", "publish") == "master"
    with pytest.raises(ModelNotFound):
        platform.sources.branch(bob, "ann", "hello", "read")
    platform.catalog.update_model(ann, "ann", "hello", visibility="public")
    with pytest.raises(PermissionDenied):  # bob may call it now, not publish it
        platform.uploads.begin(bob, "ann", "hello")
    with pytest.raises(PermissionDenied):
        platform.sources.branch(bob, "ann", "hello", "publish")
    builds = platform.builds
    assert builds.of_model(ann, "ann", "hello") == []
    with pytest.raises(BadRequest, match="not a build"):
        builds.of_model(ann, "ann", "hello", after="nope")
    with pytest.raises(NotFound, match="no build"):
        builds.get(ann, "ann", "hello", "nope")
    with pytest.raises(NotFound, match="no build"):
        builds.log(ann, "ann", "hello", "nope")
    with pytest.raises(Conflict, match="has not been built"):
        builds.publish(ann, "ann", "hello", bump="minor", release_notes=None, sample_input=None)
