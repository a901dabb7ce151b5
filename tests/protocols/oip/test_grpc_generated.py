"""The gRPC modules under algora/protocols/oip/ are what their proto generates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ...helpers import REPO

GENERATED = ["grpc_predict_v2_pb2.py", "grpc_predict_v2_pb2.pyi"]


def test_the_generated_modules_are_current(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    script = REPO / "scripts" / "generate_oip_grpc.py"
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    package = Path("algora") / "protocols" / "oip"
    for name in GENERATED:
        fresh = (tmp_path / package / name).read_text(encoding="utf-8")
        committed = (REPO / package / name).read_text(encoding="utf-8")
        assert fresh == committed, f"{name} is stale: run scripts/generate_oip_grpc.py"
