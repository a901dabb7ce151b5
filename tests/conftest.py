"""What every test package shares: the models most tests publish, the gateway in-process
(``in_process``, and ``People`` to act as each person a test made) or as a process
(``server``), and the database a parametrized test runs on (SQLite, and PostgreSQL where
one is given).

Plain functions the tests call (git, the CLI, waiting for builds) are in ``helpers.py``.
"""

from __future__ import annotations

import json
import os
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import create_engine, make_url, text
from starlette.testclient import TestClient

from algora.app import create_app
from algora.sdk.client import Client
from algora.settings import Settings
from algora.testing import RunningServer

# The fuzz tests check properties, not speed: on a busy two-core machine (xdist, servers in
# other tests) an example may take longer than Hypothesis's deadline and health checks allow.
settings.register_profile("algora", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("algora")

ECHO_MODEL = textwrap.dedent(
    """
    import os
    import time
    from typing import Any


    class Echo:
        def load(self) -> None:
            self.loads = getattr(self, "loads", 0) + 1

        def predict(self, input: Any) -> Any:
            if input == "boom":
                raise ValueError("boom happened")
            if input == "sleep":
                time.sleep(30)
            if input == "die":
                os._exit(3)
            if input == "bytes":
                return b"\\x00\\x01binary"
            if input == "text":
                return "plain text"
            if input == "void":
                return None
            print("printed", input)
            return {"echo": input, "loads": self.loads}
    """
)

# Starlette's in-process TestClient sends ``Host: testserver``: allow it beside the defaults.
os.environ.setdefault(
    "ALGORA_ALLOWED_HOSTS", json.dumps(["localhost", "127.0.0.1", "::1", "testserver"])
)

# Most tests publish many versions and call few: warming each one's workers at publish would
# only load the machine (tests/workers/test_warm_on_publish.py turns it on).
os.environ.setdefault("ALGORA_WARM_ON_PUBLISH", "false")

HELLO_MODEL = 'def apply(input: str) -> str:\n    return "Hello " + input\n'


class InProcess:
    """The gateway in-process (Starlette's TestClient) with an admin SDK client."""

    def __init__(self, http: TestClient, data_dir: Path) -> None:
        self.http = http
        self.data_dir = data_dir
        self.key = (data_dir / "admin.key").read_text().strip()
        self.auth = {"Authorization": f"Simple {self.key}"}
        self.client = Client("http://testserver", self.key, http=http)


class People:
    """An in-process gateway and the keys of the people a test made (``admin`` first): each
    of them sends requests with ``req``."""

    def __init__(self, gw: InProcess) -> None:
        self.gw = gw
        self.http = gw.http
        self.keys: dict[str, str] = {"admin": gw.key}

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Simple {self.keys[who]}"}

    def req(self, who: str, method: str, path: str, body: Any = None, **params: Any) -> Any:
        return self.http.request(method, path, json=body, headers=self.auth(who), params=params)

    def sdk(self, who: str) -> Client:
        """The SDK as ``who``."""
        return Client("http://testserver", self.keys[who], http=self.http)


@contextmanager
def in_process(data_dir: Path, **settings: Any) -> Iterator[InProcess]:
    """The gateway on ``Settings(data_dir=data_dir, **settings)``, in-process (the URL of
    :func:`database_url` goes in as ``database_url=...``)."""
    app = create_app(Settings(data_dir=data_dir, **settings))
    with TestClient(app, raise_server_exceptions=False) as http:
        yield InProcess(http, data_dir)


DATABASES = ["sqlite", "postgresql"]
"""What a fixture parametrized over the registry's databases takes (see :func:`database_url`)."""


@contextmanager
def gateway_on(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    **settings: Any,
) -> Iterator[InProcess]:
    """The gateway in-process on the database that ``request.param`` (one of
    :data:`DATABASES`) names, its data in a new temporary folder called ``name``."""
    with (
        database_url(request.param) as url,
        in_process(tmp_path_factory.mktemp(name), database_url=url, **settings) as gateway,
    ):
        yield gateway


@contextmanager
def database_url(kind: str) -> Iterator[str | None]:
    """None for the embedded SQLite default, or a fresh PostgreSQL database dropped afterwards.

    scripts/test.sh starts a PostgreSQL server and sets ALGORA_TEST_DATABASE_URL; without one
    the PostgreSQL runs are skipped, except in CI, where its absence is a failure.
    """
    if kind == "sqlite":
        yield None
        return
    server_url = os.environ.get("ALGORA_TEST_DATABASE_URL")
    if not server_url:
        if os.environ.get("CI"):
            pytest.fail(
                "CI must run the suite on PostgreSQL too: ALGORA_TEST_DATABASE_URL is unset"
            )
        pytest.skip("no PostgreSQL server (scripts/test.sh starts one)")
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"algora_{uuid.uuid4().hex[:12]}"
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield str(make_url(server_url).set(database=name).render_as_string(hide_password=False))
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """``algora serve`` as its own process on a free port, default settings, one per module
    (a module that needs other settings defines its own ``server``)."""
    with RunningServer(tmp_path_factory.mktemp("server") / "data") as running:
        yield running
