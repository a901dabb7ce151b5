"""Model secrets at rest (``algora.registry.secrets``): sealing, the key and its file."""

from __future__ import annotations

import asyncio
import base64
import os
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from algora.db.engine import create_registry_engine, make_session_factory
from algora.db.migrate import upgrade
from algora.db.tables import ModelSecret
from algora.errors import BadRequest, Unavailable
from algora.registry.secrets import KEY_FILE, ModelSecrets, SecretBox, check_env_name, parse_key
from algora.settings import Settings
from algora.workers.local import LocalBackend
from algora.workers.manager import PoolManager
from algora.workers.pool import Pool
from algora.workers.spec import CallRequest

from ..conftest import database_url
from ..helpers import worker_spec
from .conftest import owned_model

VALUE = "correct horse battery staple"


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@pytest.fixture(params=["sqlite", "postgresql"])
def registry(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Settings, sessionmaker[Session], int]]:
    with database_url(request.param) as url:
        settings = Settings(data_dir=tmp_path / "data", database_url=url)
        settings.resolved_data_dir.mkdir(mode=0o700)
        engine = create_registry_engine(settings.resolved_database_url)
        upgrade(engine)
        sessions = make_session_factory(engine)
        with sessions() as session:
            _owner, model = owned_model(session, "owner", "model")
            session.commit()
            model_id = model.id
        yield settings, sessions, model_id
        engine.dispose()


def set_value(secrets: ModelSecrets, model_id: int, name: str = "TOKEN") -> None:
    secrets.set_secret(model_id, name, VALUE, short_name="t", description="", principal_id=1)


def test_a_box_opens_what_it_sealed_and_nothing_else() -> None:
    box = SecretBox(os.urandom(32))
    sealed = box.seal(VALUE, b"model:1:TOKEN")
    assert VALUE not in sealed and VALUE not in base64.b64decode(sealed).decode("latin-1")
    assert box.seal(VALUE, b"model:1:TOKEN") != sealed  # a fresh nonce each time
    assert box.open(sealed, b"model:1:TOKEN") == VALUE
    with pytest.raises(Unavailable, match="cannot be decrypted"):
        box.open(sealed, b"model:2:TOKEN")  # copied onto another model
    with pytest.raises(Unavailable, match="cannot be decrypted"):
        SecretBox(os.urandom(32)).open(sealed, b"model:1:TOKEN")  # the wrong key
    tampered = bytearray(base64.b64decode(sealed))
    tampered[-1] ^= 1
    with pytest.raises(Unavailable, match="cannot be decrypted"):
        box.open(base64.b64encode(bytes(tampered)).decode(), b"model:1:TOKEN")
    with pytest.raises(Unavailable):
        box.open("not base64!", b"model:1:TOKEN")


def test_the_key_file_is_made_on_first_use_private(registry) -> None:
    settings, sessions, model_id = registry
    secrets = ModelSecrets(settings, sessions)
    key_file = settings.resolved_data_dir / KEY_FILE
    assert secrets.environment(model_id) == {}
    assert secrets.list_secrets(model_id) == []
    assert not key_file.exists()  # nothing sealed yet, no key made
    set_value(secrets, model_id)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(parse_key(key_file.read_text())) == 32
    assert secrets.environment(model_id) == {"TOKEN": VALUE}
    with sessions() as session:
        row = session.scalars(select(ModelSecret)).one()
        assert VALUE not in row.sealed
    # Another server on the same data directory uses the same key.
    assert ModelSecrets(settings, sessions).environment(model_id) == {"TOKEN": VALUE}
    [info] = secrets.list_secrets(model_id)
    assert info.env_name == "TOKEN" and not hasattr(info, "sealed")


def test_a_key_file_others_may_read_is_refused(registry) -> None:
    settings, sessions, model_id = registry
    set_value(ModelSecrets(settings, sessions), model_id)
    key_file = settings.resolved_data_dir / KEY_FILE
    key_file.chmod(0o644)
    with pytest.raises(Unavailable, match="chmod 600"):
        ModelSecrets(settings, sessions).environment(model_id)


def test_the_wrong_key_fails_loudly(registry) -> None:
    settings, sessions, model_id = registry
    set_value(ModelSecrets(settings, sessions), model_id)
    other = settings.model_copy(update={"secrets_key": SecretStr(new_key())})
    with pytest.raises(Unavailable, match="sealed with secrets key") as caught:
        ModelSecrets(other, sessions).environment(model_id)
    assert caught.value.details["sealed_with"] != caught.value.details["key_id"]
    # A lost key file: the secrets are there, the key is not.
    (settings.resolved_data_dir / KEY_FILE).unlink()
    with pytest.raises(Unavailable, match="no secrets key"):
        ModelSecrets(settings, sessions).environment(model_id)


def test_a_configured_key_is_used_and_no_file_is_made(registry) -> None:
    settings, sessions, model_id = registry
    configured = settings.model_copy(update={"secrets_key": SecretStr(new_key())})
    set_value(ModelSecrets(configured, sessions), model_id)
    assert not (settings.resolved_data_dir / KEY_FILE).exists()
    assert ModelSecrets(configured, sessions).environment(model_id) == {"TOKEN": VALUE}
    for bad in ("short", "!" * 44, base64.urlsafe_b64encode(os.urandom(16)).decode()):
        broken = settings.model_copy(update={"secrets_key": SecretStr(bad)})
        with pytest.raises(Unavailable, match="32 bytes") as caught:
            ModelSecrets(broken, sessions)
        assert bad not in caught.value.message


@pytest.mark.parametrize(
    "name", ["", "1A", "A-B", "A B", "PATH", "HOME", "path", "ALGORA_X", "LD_PRELOAD", "A" * 129]
)
def test_secret_names_are_environment_variable_names(name: str) -> None:
    with pytest.raises(BadRequest):
        check_env_name(name)


@pytest.mark.parametrize("name", ["A", "_private", "DB_PASSWORD", "api_key2", "A" * 128])
def test_valid_secret_names(name: str) -> None:
    check_env_name(name)


ENV_MODEL = """
import os
import time

def apply(input):
    if input == "slow":
        time.sleep(1)
    return os.environ.get("TOKEN", "")
"""


def test_retired_pools_restart_with_the_new_environment(tmp_path: Path) -> None:
    """What a secret change relies on: the next call starts workers from the new spec, while a
    call in flight on the old pool still finishes."""
    base = worker_spec(tmp_path, ENV_MODEL)

    async def call(pool: Pool, text: str) -> bytes:
        return (await pool.call(CallRequest("r", "text", text.encode(), 30))).payload

    async def main() -> None:
        manager = PoolManager(tmp_path / "data", LocalBackend())
        old = await manager.get("k", replace(base, env={"TOKEN": "old"}))
        assert await call(old, "x") == b"old"
        in_flight = asyncio.create_task(call(old, "slow"))
        while old.stats().in_flight == 0:
            await asyncio.sleep(0.01)
        await manager.retire(["k"])  # busy: it drains in the background
        new = await manager.get("k", replace(base, env={"TOKEN": "new"}))
        assert new is not old
        assert await call(new, "x") == b"new"
        assert await in_flight == b"old"
        while old.running:
            await asyncio.sleep(0.05)
        await manager.retire(["k", "unknown"])  # idle: stopped at once
        assert not new.running and manager.running("k") is None
        await manager.stop_all()

    asyncio.run(main())
