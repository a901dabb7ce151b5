"""The slim client install: the SDK and the CLI's client commands load nothing of the server,
and a server command on a client install names the extra to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SERVER_PACKAGES = {
    "alembic", "anyio", "boto3", "botocore", "cryptography", "cyclonedx", "fastapi",
    "packageurl", "packaging", "sqlalchemy", "starlette", "uv", "uvicorn",
}  # fmt: skip

# A client install, as far as this process can tell: the server's packages cannot be imported.
WITHOUT_SERVER = textwrap.dedent(
    f"""
    import importlib.abc, sys

    class ClientInstall(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in {sorted(SERVER_PACKAGES)!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, ClientInstall())
    """
)


def python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )


def test_the_client_side_imports_nothing_of_the_server() -> None:
    code = WITHOUT_SERVER + textwrap.dedent(
        """
        import algora, algora.cli.main, algora.sdk.client, algora.sdk.data
        algora.Client, algora.DataHandle, algora.AlgoraError
        loaded = sorted({m.partition(".")[0] for m in sys.modules} & set(sys.argv[1:]))
        print(loaded)
        """
    )
    done = python(code, *SERVER_PACKAGES)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_server_command_on_a_client_install_names_the_extra() -> None:
    code = WITHOUT_SERVER + "from algora.cli.main import main; sys.argv[0] = 'algora'; main()"
    for command in (["serve"], ["audit", "verify", "--data-dir", "."]):
        done = python(code, *command)
        assert done.returncode == 1
        assert "pip install 'algora[server]'" in done.stderr
        assert "Traceback" not in done.stderr
