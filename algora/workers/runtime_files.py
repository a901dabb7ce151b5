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

__all__ = ["RUNTIME_PACKAGE", "install_runtime", "runtime_command"]

RUNTIME_PACKAGE = "algora_runtime"
_SOURCE_DIR = Path(__file__).resolve().parent.parent / "runtime"
_DIR_MODE = 0o700
_FILE_MODE = 0o600


@functools.cache
def _runtime_sources() -> tuple[tuple[str, bytes], ...]:
    """``(file name, contents)`` of every runtime module, sorted; read once per process."""
    return tuple((p.name, p.read_bytes()) for p in sorted(_SOURCE_DIR.glob("*.py")))


def _digest(sources: tuple[tuple[str, bytes], ...]) -> str:
    h = hashlib.sha256()
    for name, data in sources:
        h.update(name.encode() + b"\0" + len(data).to_bytes(8, "big") + data)
    return h.hexdigest()


def install_runtime(data_dir: Path) -> Path:
    """Copy the runtime under ``data_dir`` (once); return the directory to put on sys.path."""
    sources = _runtime_sources()
    root = data_dir / "runtime"
    target = root / _digest(sources)
    if (target / RUNTIME_PACKAGE / "main.py").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        staging.chmod(_DIR_MODE)
        package = staging / RUNTIME_PACKAGE
        package.mkdir(mode=_DIR_MODE)
        for name, data in sources:
            fd = os.open(package / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        try:
            staging.rename(target)
        except OSError:
            # Another process installed the same digest first; its copy is identical.
            if not (target / RUNTIME_PACKAGE / "main.py").is_file():
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
    parent = install_runtime(data_dir)
    boot = (
        f"import sys; sys.path.insert(0, {str(parent)!r}); "
        f"from {RUNTIME_PACKAGE}.main import main; main()"
    )
    return [
        str(python),
        "-I",
        "-c",
        boot,
        "--source",
        str(source_dir),
        "--entrypoint",
        entrypoint,
    ]
