"""The gateway in-process on each database, and the two models the native API tests call."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from algora.testing import write_model

from ...conftest import (
    DATABASES,
    ECHO_MODEL,
    HELLO_MODEL,
    InProcess,
    gateway_on,
)


@pytest.fixture(scope="module", params=DATABASES)
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcess]:
    with gateway_on(request, tmp_path_factory, "algora-data", default_call_timeout=20) as gw:
        yield gw


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
