"""One server per test module for the Open Inference Protocol, over REST and gRPC."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from algora.errors import BuildFailed
from algora.testing import RunningServer, free_port, write_model

from ...helpers import REPO

MIRROR = """
import numpy as np


def apply(inputs):
    if not isinstance(inputs, dict):
        inputs = {"input": inputs}
    out = {}
    for name, x in inputs.items():
        if x.dtype == object:
            out[name] = np.array([v[::-1] for v in x.reshape(-1)], dtype=object).reshape(x.shape)
        elif x.dtype == bool:
            out[name] = ~x
        else:
            out[name] = x * 2
    return out
"""

PLAIN = """
def apply(x: list[list[int]], parameters: dict | None = None) -> list[list[int]]:
    scale = (parameters or {}).get("scale", 1)
    return [[value * scale for value in row] for row in x]
"""


@pytest.fixture(scope="module")
def grpc_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, grpc_port: int) -> Iterator[RunningServer]:
    """A server (gRPC on ``grpc_port`` too) with the example (declared tensors), ``mirror``
    (NumPy, nothing declared), ``plain`` (no NumPy: nested lists; tensors from its type hints)
    and ``broken`` (its build failed)."""
    root = tmp_path_factory.mktemp("oip")
    args = ("--grpc-port", str(grpc_port))
    with RunningServer(root / "data", args=args) as server, server.client() as client:
        client.publish(REPO / "examples" / "tensors")
        client.publish(write_model(root / "mirror", "mirror", MIRROR, requirements="numpy\n"))
        client.publish(write_model(root / "plain", "plain", PLAIN))
        with pytest.raises(BuildFailed):
            client.publish(write_model(root / "broken", "broken", "import nothing_at_all\n"))
        yield server
