from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from algora.gateway.app import create_app
from algora.sdk.client import Client
from algora.settings import Settings
from algora.testing import write_model

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

HELLO_MODEL = 'def apply(input: str) -> str:\n    return "Hello " + input\n'


class InProcess:
    """The gateway in-process (Starlette's TestClient) with an admin SDK client."""

    def __init__(self, http: TestClient, data_dir: Path) -> None:
        self.http = http
        self.data_dir = data_dir
        self.key = (data_dir / "admin.key").read_text().strip()
        self.auth = {"Authorization": f"Simple {self.key}"}
        self.client = Client("http://testserver", self.key, http=http)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    data_dir = tmp_path_factory.mktemp("algora-data")
    app = create_app(Settings(data_dir=data_dir, default_call_timeout=20))
    with TestClient(app, raise_server_exceptions=False) as http:
        yield InProcess(http, data_dir)


@pytest.fixture(scope="module")
def published(gateway: InProcess, tmp_path_factory: pytest.TempPathFactory) -> InProcess:
    """hello (text function) and echo (a class model with every behaviour tests need)."""
    root = tmp_path_factory.mktemp("models")
    hello = write_model(root / "hello", "hello", HELLO_MODEL, example='text = "world"')
    echo = write_model(
        root / "echo",
        "echo",
        ECHO_MODEL,
        entrypoint="model:Echo",
        example='input = "ping"',
        extra_manifest="\n[serving]\ntimeout = 2\n",
    )
    gateway.client.publish(hello)
    gateway.client.publish(echo)
    return gateway
