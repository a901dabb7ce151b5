"""A version's files on this gateway's disk, shared with the others through the S3 store.

Workers run from two local folders: the version's files (``DATA_DIR/sources/CONTENT_HASH``, the
model as its build command left it) and its environment (``DATA_DIR/envs/ENV_HASH``). The
gateway that built a version has both. With an S3 store it also packs the files into the bucket
once the version is ready (``trees/CONTENT_HASH.tar.gz``), and every other gateway materialises
them before it starts that version's workers: it fetches and unpacks the files, checks that
they hash to the version's content hash, and builds the environment from the lock the registry
keeps (the same uv build as a publish, cached by its hash).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from algora.db.tables import Environment, Version
from algora.environments.builder import EnvironmentBuilder
from algora.errors import Unavailable
from algora.modelfolder.packing import pack_directory, tree_hash
from algora.publishing.archive import safe_extract
from algora.store.s3 import S3BlobStore
from algora.workers.backend import WorkerBackend, WorkerHandle
from algora.workers.spec import WorkerSpec

__all__ = ["MaterialisingBackend", "VersionFiles"]

logger = logging.getLogger(__name__)

_WAIT_FOR_FILES = 30.0
"""Seconds to wait for a version's files to reach the store: the gateway that built the version
packs them right after marking it ready, so a call that comes at once may find them missing."""
_NO_CAP = 1 << 50  # the files were checked at publish and are checked again by their hash


class VersionFiles:
    """Packs ready versions' files into the store; fetches them, and builds environments, here."""

    def __init__(
        self,
        store: S3BlobStore,
        sessions: sessionmaker[Session],
        builder: EnvironmentBuilder,
        data_dir: Path,
        *,
        only_binary: Callable[[], bool],
    ) -> None:
        """``only_binary`` says whether environments refuse source distributions, as the
        dependency policy says at publish."""
        self._store = store
        self._sessions = sessions
        self._builder = builder
        self._sources = data_dir / "sources"
        self._staging = data_dir / "staging"
        self._only_binary = only_binary
        self._shared: set[str] = set()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def share(self, version_id: int) -> None:
        """Pack a ready version's files into the store, unless there already (blocking: builds
        call it on their own threads when they finish). A failure is logged: the version serves
        here, and other gateways say that its files are missing."""
        with self._sessions() as session:
            version = session.get(Version, version_id)
        if version is not None and version.status == "ready" and version.content_hash:
            self._share(version.content_hash)

    def share_ready(self) -> None:
        """Share every ready version's files that this gateway holds and has not shared yet
        (after a build from git is published, which names no version)."""
        here = {entry.name for entry in self._sources.iterdir()} - self._shared
        if not here:
            return
        with self._sessions() as session:
            ready = session.scalars(
                select(Version.content_hash).where(
                    Version.status == "ready", Version.content_hash.in_(here)
                )
            ).all()
        for content_hash in set(ready):
            if content_hash is not None:
                self._share(content_hash)

    def _share(self, content_hash: str) -> None:
        folder = self._sources / content_hash
        try:
            key = self._store.tree_key(content_hash)
            if folder.is_dir() and not self._store.has(key):
                with tempfile.TemporaryDirectory(dir=self._staging) as scratch:
                    packed = Path(scratch) / "files.tar.gz"
                    pack_directory(folder, packed)
                    self._store.upload(packed, key)
            self._shared.add(content_hash)
        except Exception:
            logger.warning("could not share the files of %s", content_hash[:12], exc_info=True)

    def ensure(self, spec: WorkerSpec) -> None:
        """Make the files and the environment that ``spec``'s workers run from exist here
        (blocking). Raises :class:`Unavailable` saying why they cannot."""
        content_hash, env_hash = spec.source_dir.name, spec.python.parent.parent.name
        with self._lock(content_hash):
            if not spec.source_dir.is_dir():
                self._fetch(content_hash, env_hash, spec.source_dir)
        with self._lock(env_hash):
            if not spec.python.exists():
                self._build_environment(env_hash, spec.runtime)

    def _lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def _fetch(self, content_hash: str, env_hash: str, target: Path) -> None:
        key = self._store.tree_key(content_hash)
        self._staging.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.TemporaryDirectory(dir=self._staging) as scratch:
            packed = Path(scratch) / "files.tar.gz"
            deadline = time.monotonic() + _WAIT_FOR_FILES
            while not self._store.download(key, packed):
                if time.monotonic() > deadline:
                    raise Unavailable(
                        f"the version's files ({content_hash[:12]}) are not in the store: the "
                        "gateway that built it may have stopped before sharing them, or built "
                        "it before the store was shared; publish the version again"
                    )
                time.sleep(0.5)
            unpacked = Path(scratch) / "files"
            safe_extract(packed, unpacked, max_bytes=_NO_CAP, max_members=_NO_CAP)
            found = hashlib.sha256(f"{tree_hash(unpacked)}\n{env_hash}".encode()).hexdigest()
            if found != content_hash:
                raise Unavailable(
                    f"the version's files in the store ({content_hash[:12]}) do not hash to its "
                    "content hash: its build command may have written files that are never "
                    "shared (__pycache__, .venv, *.pyc), or they were changed; serve it from the "
                    "gateway that published it, or publish it again without them"
                )
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                unpacked.rename(target)
            except OSError:
                if not target.is_dir():
                    raise
        logger.info("fetched the files of %s from the store", content_hash[:12])

    def _build_environment(self, env_hash: str, runtime: str) -> None:
        with self._sessions() as session:
            row = session.get(Environment, env_hash)
        if row is None:
            raise Unavailable(f"environment {env_hash[:12]} is not in the registry")
        if runtime != "python":
            raise Unavailable(
                f"{runtime} environments are built only by the gateway that published the "
                "version: call it through that gateway"
            )
        started = time.monotonic()
        built = self._builder.ensure(
            row.lock, lambda line: logger.debug("%s", line), only_binary=self._only_binary()
        )
        if built.hash != env_hash:
            raise Unavailable(
                f"the version's environment was built with Python {row.python_version}, and "
                "this gateway's interpreter (ALGORA_PYTHON) is another: give every gateway the "
                "same one"
            )
        logger.info("built environment %s in %.1fs", env_hash[:12], time.monotonic() - started)


class MaterialisingBackend:
    """A worker backend that first makes the worker's files and environment exist here."""

    def __init__(self, inner: WorkerBackend, files: VersionFiles) -> None:
        self._inner = inner
        self._files = files

    async def start(self, spec: WorkerSpec, data_dir: Path) -> WorkerHandle:
        if not (spec.source_dir.is_dir() and spec.python.exists()):
            await asyncio.to_thread(self._files.ensure, spec)
        return await self._inner.start(spec, data_dir)
