"""examples/canary/canary.py against a running server: it publishes two versions, drives the
canary from 10 % to 100 % on the comparison report, and leaves the alias on the new version;
asked for more than the new version can show, it rolls the alias back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from algora.errors import InvalidInput
from algora.testing import RunningServer

from ..helpers import REPO

SCRIPT = REPO / "examples" / "canary" / "canary.py"


def _run(server: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ALGORA_URL": server.url, "ALGORA_KEY": server.key}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--calls", "150", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _production(server: RunningServer) -> dict[str, object]:
    with server.client() as admin:
        [alias] = [a for a in admin.aliases("admin/canary-demo") if a["alias"] == "production"]
    return alias


def test_the_canary_example_promotes_on_evidence_and_rolls_back(tmp_path: Path) -> None:
    with RunningServer(tmp_path / "data") as server:
        done = _run(server)
        assert done.returncode == 0, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        assert "production: 1.0.0 90%, 2.0.0 10%" in lines
        assert "production: 1.0.0 50%, 2.0.0 50%" in lines
        assert any(line.startswith("  2.0.0 canary   10%:") for line in lines), lines
        assert lines[-1] == "production: 2.0.0 100%: promoted on evidence"
        promoted = _production(server)
        with server.client() as admin, pytest.raises(InvalidInput, match="nothing to compare"):
            admin.compare_alias("admin/canary-demo", "production")
        # 2.0.0 cannot be 50 points more accurate than 1.0.0: judged worse, rolled back
        refused = _run(server, "--tolerance", "-0.5")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "rolled back to 1.0.0" in refused.stdout.splitlines()[-1]
        rolled_back = _production(server)
    assert (promoted["version"], promoted["weights"]) == ("2.0.0", {"2.0.0": 100})
    assert (rolled_back["version"], rolled_back["weights"]) == ("1.0.0", {"1.0.0": 100})
