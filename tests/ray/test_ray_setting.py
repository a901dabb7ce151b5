"""Ray is imported only when ALGORA_WORKER_BACKEND=ray, and a server without it says what to
install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from algora.errors import AlgoraError
from algora.platform import Platform
from algora.settings import Settings

IMPORTS = """
import sys
import algora.cli.main
import algora.sdk
from algora.platform import Platform
from algora.settings import Settings

platform = Platform(Settings(data_dir=sys.argv[1]))
print(type(platform.backend).__name__, "ray" in sys.modules)
"""


def test_the_client_and_a_default_server_never_import_ray(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORTS, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.split() == ["LocalBackend", "False"], done.stderr


def test_a_server_without_ray_says_which_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # None in sys.modules: not installed
    monkeypatch.delitem(sys.modules, "algora.workers.ray_backend", raising=False)
    settings = Settings(data_dir=tmp_path / "data", worker_backend="ray")
    with pytest.raises(AlgoraError, match=r"lacks Ray: pip install 'algora\[ray\]'"):
        Platform(settings)
