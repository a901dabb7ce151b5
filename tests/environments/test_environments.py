"""Environments: the dependency policy, the environment hash, and real builds with uv."""

from __future__ import annotations

import os
import platform
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from algora.environments.builder import MARKER, Environment, EnvironmentBuilder
from algora.environments.requirements import parse_requirements
from algora.environments.spec import environment_hash, interpreter_version
from algora.errors import BuildFailed, InvalidManifest

INDEX = "https://pypi.org/simple"
SIX_HASHES = (
    "sha256:1e61c37477a1626458e36f7b1d82aa5c9b094fa4802892072e49de9c60c4c926",
    "sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254",
)


class Lines(list[str]):
    """A log sink that keeps every line, safe to share between threads."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            self.append(line)

    @property
    def text(self) -> str:
        return "\n".join(self)


# ------------------------------------------------------------------------------------------
# requirements policy


def test_plain_requirements_are_accepted_and_normalized() -> None:
    text = """
        # the model's dependencies
        six==1.16.0   # pinned
        numpy >= 1.24 , < 3 ; python_version >= "3.10"
        requests[socks]
        scikit-learn \\
            ~= 1.7
    """
    assert parse_requirements(text) == [
        "six==1.16.0",
        'numpy<3,>=1.24; python_version >= "3.10"',
        "requests[socks]",
        "scikit-learn~=1.7",
    ]
    assert parse_requirements("") == []
    assert parse_requirements("# only a comment\n\n") == []


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("-i https://evil.example/simple", "option lines are not allowed"),
        ("--index-url https://evil.example/simple", "option lines"),
        ("--extra-index-url=https://evil.example/simple", "option lines"),
        ("-f https://evil.example/wheels", "option lines"),
        ("--find-links /tmp/wheels", "option lines"),
        ("--trusted-host evil.example", "option lines"),
        ("-e .", "option lines"),
        ("--editable git+https://evil.example/x.git", "option lines"),
        ("-r other.txt", "option lines"),
        ("-c constraints.txt", "option lines"),
        ("--requirement other.txt", "option lines"),
        ("foo @ https://evil.example/foo-1.0.tar.gz", "URLs are not allowed"),
        ("foo @ file:///tmp/foo", "URLs are not allowed"),
        ("https://evil.example/foo-1.0-py3-none-any.whl", "URLs are not allowed"),
        ("git+https://evil.example/foo.git", "URLs are not allowed"),
        ("./vendored/foo", "local paths are not allowed"),
        ("/abs/foo", "local paths are not allowed"),
        ("~/foo", "local paths are not allowed"),
        ("foo-1.0-py3-none-any.whl", "archive files are not allowed"),
        ("foo==1.0 bar==2.0", "not a valid requirement"),
    ],
)
def test_option_lines_urls_and_paths_are_refused(line: str, reason: str) -> None:
    with pytest.raises(InvalidManifest) as caught:
        parse_requirements(f"six==1.16.0\n# fine so far\n{line}\n")
    assert reason in caught.value.message
    assert f"line 3 ({line!r})" in caught.value.message


# ------------------------------------------------------------------------------------------
# the environment hash

LOCK = """\
numpy==2.0.0 \\
    --hash=sha256:aaa \\
    --hash=sha256:bbb
    # via -r requirements.in
six==1.16.0 \\
    --hash=sha256:ccc
    # via -r requirements.in
"""

SAME_LOCK = """
# a different comment
six==1.16.0 --hash=sha256:ccc

NumPy==2.0.0     --hash=sha256:bbb   --hash=sha256:aaa   # same hashes, other order
"""


def test_environment_hash_ignores_comments_whitespace_and_order() -> None:
    base = environment_hash("3.11.7", LOCK)
    assert len(base) == 64 and int(base, 16) >= 0
    assert environment_hash("3.11.7", SAME_LOCK) == base
    assert environment_hash(" 3.11.7\n", LOCK) == base


def test_environment_hash_sees_versions_hashes_and_interpreter() -> None:
    base = environment_hash("3.11.7", LOCK)
    assert environment_hash("3.11.8", LOCK) != base
    assert environment_hash("3.11.7", LOCK.replace("six==1.16.0", "six==1.17.0")) != base
    assert environment_hash("3.11.7", LOCK.replace("sha256:ccc", "sha256:ddd")) != base
    assert environment_hash("3.11.7", LOCK.replace("--hash=sha256:ccc", "")) != base
    assert environment_hash("3.11.7", "") != base
    assert environment_hash("3.11.7", "") == environment_hash("3.11.7", "# nothing\n\n")


def test_interpreter_version_is_asked_once() -> None:
    interpreter_version.cache_clear()
    assert interpreter_version(sys.executable) == platform.python_version()
    assert interpreter_version(sys.executable) == platform.python_version()
    assert interpreter_version.cache_info().hits == 1


def test_interpreter_that_cannot_run_is_a_build_failure(tmp_path: Path) -> None:
    with pytest.raises(BuildFailed, match="cannot be run"):
        interpreter_version(str(tmp_path / "no-such-python"))


# ------------------------------------------------------------------------------------------
# build commands (with this interpreter standing in for an environment)


@pytest.fixture
def host_env() -> Environment:
    return Environment(hash="host", path=Path(sys.prefix), python=Path(sys.executable), reused=True)


def test_run_in_environment_streams_output(tmp_path: Path, host_env: Environment) -> None:
    builder = EnvironmentBuilder(tmp_path / "envs", sys.executable, INDEX)
    lines = Lines()
    script = (
        "import os, sys; print('prefix', sys.prefix); print('home', os.environ['HOME']);"
        "print('path', os.environ['PATH']); print('keys', sorted(os.environ))"
    )
    builder.run_in_environment(host_env, ["python", "-c", script], tmp_path, lines, timeout=60)
    assert f"home {tmp_path}" in lines
    assert f"prefix {sys.prefix}" in lines
    path_line = next(line for line in lines if line.startswith("path "))
    assert path_line.removeprefix("path ").startswith(f"{Path(sys.prefix) / 'bin'}:")
    keys_line = next(line for line in lines if line.startswith("keys "))
    assert "ALGORA" not in keys_line and "PIP_" not in keys_line


def test_run_in_environment_failure_carries_last_lines(
    tmp_path: Path, host_env: Environment
) -> None:
    builder = EnvironmentBuilder(tmp_path / "envs", sys.executable, INDEX)
    (tmp_path / "train.py").write_text(
        "import sys\nfor i in range(100):\n    print('step', i)\nsys.exit('training diverged')\n"
    )
    lines = Lines()
    with pytest.raises(BuildFailed) as caught:
        builder.run_in_environment(host_env, ["python", "train.py"], tmp_path, lines, timeout=60)
    message = caught.value.message
    assert "exited with status 1" in message
    assert "training diverged" in message and "step 99" in message
    assert "step 0\n" not in message  # only the tail
    assert "step 0" in caught.value.details["log"]
    assert "step 50" in lines


def test_run_in_environment_timeout(tmp_path: Path, host_env: Environment) -> None:
    builder = EnvironmentBuilder(tmp_path / "envs", sys.executable, INDEX)
    with pytest.raises(BuildFailed, match=r"timed out after 0\.5s"):
        builder.run_in_environment(
            host_env, ["python", "-c", "import time; time.sleep(30)"], tmp_path, Lines(), 0.5
        )


def test_a_daemon_left_behind_does_not_wedge_the_build(
    tmp_path: Path, host_env: Environment
) -> None:
    builder = EnvironmentBuilder(tmp_path / "envs", sys.executable, INDEX)
    script = (
        "import subprocess; "
        "daemon = subprocess.Popen(['setsid', 'sleep', '300']); "
        "open('daemon.pid', 'w').write(str(daemon.pid)); print('trained')"
    )
    started = time.monotonic()
    lines = Lines()
    try:
        builder.run_in_environment(host_env, ["python", "-c", script], tmp_path, lines, 60)
        assert time.monotonic() - started < 10
        assert "trained" in lines
    finally:
        os.kill(int((tmp_path / "daemon.pid").read_text()), signal.SIGKILL)


def test_run_in_environment_missing_command(tmp_path: Path, host_env: Environment) -> None:
    builder = EnvironmentBuilder(tmp_path / "envs", sys.executable, INDEX)
    with pytest.raises(BuildFailed, match="cannot run"):
        builder.run_in_environment(host_env, ["no-such-tool-xyz"], tmp_path, Lines(), 10)
    with pytest.raises(BuildFailed, match="empty"):
        builder.run_in_environment(host_env, [], tmp_path, Lines(), 10)


# ------------------------------------------------------------------------------------------
# real uv


@pytest.fixture(scope="module")
def six_lock(tmp_path_factory: pytest.TempPathFactory) -> str:
    builder = EnvironmentBuilder(tmp_path_factory.mktemp("lock"), sys.executable, INDEX)
    return builder.lock(["six==1.16.0"], Lines())


@pytest.mark.slow
def test_lock_pins_with_hashes(tmp_path: Path, six_lock: str) -> None:
    assert six_lock.startswith("six==1.16.0")
    for digest in SIX_HASHES:
        assert f"--hash={digest}" in six_lock
    assert "uv pip compile" not in six_lock  # no header: the lock is stable
    builder = EnvironmentBuilder(tmp_path, sys.executable, INDEX)
    lines = Lines()
    assert builder.lock(["six==1.16.0"], lines) == six_lock
    assert any("Resolved" in line for line in lines)
    assert builder.lock([], lines) == ""


@pytest.mark.slow
def test_unsatisfiable_requirement_is_a_build_failure(tmp_path: Path) -> None:
    builder = EnvironmentBuilder(tmp_path, sys.executable, INDEX)
    lines = Lines()
    with pytest.raises(BuildFailed) as caught:
        builder.lock(["six==0.0.0.999"], lines)
    message = caught.value.message
    assert message.startswith("could not lock the requirements")
    assert "six==0.0.0.999" in message and "unsatisfiable" in message
    assert "six==0.0.0.999" in caught.value.details["log"]
    assert lines, "uv's output was streamed"


@pytest.mark.slow
def test_ensure_builds_then_reuses(tmp_path: Path, six_lock: str) -> None:
    root = tmp_path / "envs"
    builder = EnvironmentBuilder(root, sys.executable, INDEX, uv_cache_dir=None)
    lines = Lines()
    env = builder.ensure(six_lock, lines)
    assert not env.reused
    assert env.path == root / env.hash
    assert env.hash == environment_hash(platform.python_version(), six_lock)
    assert (env.path / MARKER).is_file()
    assert any("six==1.16.0" in line for line in lines)
    out = subprocess.run(
        [str(env.python), "-c", "import six; print(six.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "1.16.0"
    with pytest.raises(subprocess.CalledProcessError):  # isolated from the host's packages
        subprocess.run([str(env.python), "-c", "import pydantic"], capture_output=True, check=True)

    again = builder.ensure("# reformatted\n" + six_lock.replace("    ", "  "), Lines())
    assert again.reused and again.path == env.path and again.python == env.python

    for path in [root, env.path, *env.path.rglob("*")]:
        if not path.is_symlink():
            assert not stat.S_IMODE(path.stat().st_mode) & 0o007, f"{path} is world-accessible"
    assert [p.name for p in root.iterdir() if p.name.startswith(".") and p.name != ".locks"] == []

    run_lines = Lines()
    builder.run_in_environment(
        env, ["python", "-c", "import six; print('six', six.__version__)"], tmp_path, run_lines
    )
    assert "six 1.16.0" in run_lines


@pytest.mark.slow
def test_concurrent_ensures_build_once(tmp_path: Path, six_lock: str) -> None:
    builder = EnvironmentBuilder(tmp_path / "envs", sys.executable, INDEX)
    results: list[Environment] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            results.append(builder.ensure(six_lock, Lines()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not errors
    assert len(results) == 2
    assert sorted(env.reused for env in results) == [False, True]
    assert results[0].path == results[1].path
    built = [p.name for p in (tmp_path / "envs").iterdir() if p.name != ".locks"]
    assert built == [results[0].hash]


@pytest.mark.slow
def test_empty_lock_builds_a_bare_environment(tmp_path: Path) -> None:
    builder = EnvironmentBuilder(tmp_path / "envs", sys.executable, INDEX)
    env = builder.ensure("", Lines())
    assert env.python.exists() and not env.reused
    version = subprocess.run(
        [str(env.python), "-c", "import sys; print(sys.prefix)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(version.stdout.strip()) == env.path


@pytest.mark.slow
def test_tampered_hash_fails_the_install_and_leaves_nothing(tmp_path: Path, six_lock: str) -> None:
    root = tmp_path / "envs"
    builder = EnvironmentBuilder(root, sys.executable, INDEX)
    tampered = six_lock
    for digest in SIX_HASHES:
        tampered = tampered.replace(digest, "sha256:" + "0" * 64)
    with pytest.raises(BuildFailed) as caught:
        builder.ensure(tampered, Lines())
    assert caught.value.message.startswith("could not install the locked packages")
    assert "hash" in caught.value.message.lower()
    assert [p.name for p in root.iterdir()] == [".locks"]
