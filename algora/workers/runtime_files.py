"""Install the worker runtime where an environment's interpreter can import it, and build argv.

The runtime (``algora/runtime/*.py``) is copied to
``DATA_DIR/runtime/<sha256 of its sources>/algora_runtime/``: content-addressed, so a new Algora
release never changes the files a running worker uses, and written atomically (a temporary
directory renamed into place), so concurrent gateways never see half a copy.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

__all__ = [
    "NODE_WORKER",
    "RUNTIME_PACKAGE",
    "install_node_runtime",
    "install_runtime",
    "node_command",
    "runtime_command",
    "zygote_command",
]

RUNTIME_PACKAGE = "algora_runtime"
_SOURCE_DIR = Path(__file__).resolve().parent.parent / "runtime"
_NODE_SOURCE_DIR = Path(__file__).resolve().parent.parent / "runtime_node"
NODE_WORKER = "worker.js"
_KIB = 1024
# Node cannot dup file descriptors itself: the shell hands the worker the frame stream on fds 3
# and 4 and points fd 0 at /dev/null and fd 1 at stderr before Node starts (docs/protocol.md).
_NODE_BOOT = 'exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>&2'
_DIR_MODE = 0o700
_FILE_MODE = 0o600


@functools.cache
def _runtime_sources() -> tuple[tuple[str, bytes], ...]:
    """``(file name, contents)`` of every runtime module, sorted; read once per process."""
    return tuple((p.name, p.read_bytes()) for p in sorted(_SOURCE_DIR.glob("*.py")))


@functools.cache
def _node_sources() -> tuple[tuple[str, bytes], ...]:
    return tuple((p.name, p.read_bytes()) for p in sorted(_NODE_SOURCE_DIR.glob("*.js")))


def _digest(sources: tuple[tuple[str, bytes], ...]) -> str:
    h = hashlib.sha256()
    for name, data in sources:
        h.update(name.encode() + b"\0" + len(data).to_bytes(8, "big") + data)
    return h.hexdigest()


def install_runtime(data_dir: Path) -> Path:
    """Copy the runtime under ``data_dir`` (once); return the directory to put on sys.path."""
    return _install(data_dir / "runtime", _runtime_sources(), RUNTIME_PACKAGE, "main.py")


def install_node_runtime(data_dir: Path) -> Path:
    """Copy the Node worker under ``data_dir`` (once); return the folder holding ``worker.js``."""
    return _install(data_dir / "runtime-node", _node_sources(), "", NODE_WORKER)


def _install(
    root: Path, sources: tuple[tuple[str, bytes], ...], package_name: str, marker: str
) -> Path:
    target = root / _digest(sources)
    if (target / package_name / marker).is_file():
        return target
    root.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        staging.chmod(_DIR_MODE)
        package = staging / package_name
        package.mkdir(mode=_DIR_MODE, exist_ok=True)
        for name, data in sources:
            fd = os.open(package / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        try:
            staging.rename(target)
        except OSError:
            # Another process installed the same digest first; its copy is identical.
            if not (target / package_name / marker).is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def runtime_command(data_dir: Path, python: Path, source_dir: Path, entrypoint: str) -> list[str]:
    """The argv that starts a worker for ``entrypoint`` in ``source_dir`` with ``python``.

    ``-I`` (isolated mode) keeps the worker free of ``PYTHON*`` variables and the user site;
    the runtime's parent directory is put on sys.path by the ``-c`` program itself.
    """
    return [
        *_boot(data_dir, python, "main"),
        "--source",
        str(source_dir),
        "--entrypoint",
        entrypoint,
    ]


def zygote_command(
    data_dir: Path, python: Path, roots: list[Path], *, sandboxed: bool
) -> list[str]:
    """The argv that starts a zygote of ``python``'s environment (``algora/runtime/zygote.py``),
    whose workers' sources, homes and socket folders lie under ``roots``."""
    sources, homes, channels = (str(root.resolve()) for root in roots)
    argv = [*_boot(data_dir, python, "zygote"), "--sources", sources, "--homes", homes]
    return [*argv, "--channels", channels, *(["--sandbox"] if sandboxed else [])]


def _boot(data_dir: Path, python: Path, module: str) -> list[str]:
    parent = install_runtime(data_dir)
    boot = (
        f"import sys; sys.path.insert(0, {str(parent)!r}); "
        f"from {RUNTIME_PACKAGE}.{module} import main; main()"
    )
    return [str(python), "-I", "-c", boot]


def node_command(
    data_dir: Path, node: Path, source_dir: Path, entrypoint: str, memory_bytes: int | None
) -> list[str]:
    """The argv that starts a Node worker for ``entrypoint`` (``file.js[:attr]``) in
    ``source_dir`` with the ``node`` executable.

    The memory limit is RLIMIT_DATA, as for Python workers, set by the shell before Node
    starts (Node cannot set it itself); past it V8 aborts the worker. Node has no way to
    re-arm RLIMIT_CPU per call: the worker's own watchdog thread enforces ``--cpu-limit``.
    """
    boot = _NODE_BOOT
    if memory_bytes is not None:
        boot = f"ulimit -d {max(1, memory_bytes // _KIB)} && ulimit -c 0 && {boot}"
    worker = install_node_runtime(data_dir) / NODE_WORKER
    return [
        "/bin/sh",
        "-c",
        boot,
        str(node),
        str(worker),
        "--source",
        str(source_dir),
        "--entrypoint",
        entrypoint,
    ]
