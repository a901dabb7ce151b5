"""The node side of the Ray worker backend: the actor that runs one worker on its Ray node.

The actor (``algora.workers.ray_backend`` makes it one; this module never imports Ray) starts
the version's worker with the local backend, so the sandbox, the memory and CPU limits and the
secrets are the local workers' own, and relays the worker's frames as bytes. Its files and its
environment are the gateway's paths where the node shares them (one machine, or a shared data
folder); otherwise the gateway ships the files packed, and the environment is built here from
the version's lock with the same uv build as a publish, cached by its hash.

A model's calls to the gateway go through a Unix socket that the actor serves on the node,
tunnelled byte for byte to the worker's channel on the gateway (``algora.gateway.channels``),
which authenticates them as it does for a local worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from algora.environments.builder import EnvironmentBuilder
from algora.errors import Unavailable, WorkerDied
from algora.publishing.archive import safe_extract
from algora.runtime.frames import FrameError, decode_frame, encode_frame
from algora.workers.channel import SOCKET_NAME
from algora.workers.local import LocalBackend, LocalWorker
from algora.workers.spec import WorkerSpec
from algora.workers.zygote import ZygoteWorker

__all__ = ["NEEDS_FILES", "BuildConfig", "NodeWorker", "place"]

logger = logging.getLogger(__name__)

NEEDS_FILES = "files"
"""What ``NodeWorker.start`` answers when the version's files must be shipped to the node."""
_NO_CAP = 1 << 50  # packed by the gateway from the folder its own workers run from
_CHUNK = 1 << 16


@dataclass(frozen=True)
class BuildConfig:
    """How the gateway builds environments, for a node that has to build one."""

    python: str
    index_url: str
    timeout: float


def node_root(data_dir: Path) -> Path:
    """The node's folder for runtimes, homes, files and environments: the gateway's data folder
    where the node shares it, else one in the home of the node's user."""
    if data_dir.is_dir():
        return data_dir
    root = Path.home() / ".algora-ray"
    root.mkdir(mode=0o700, exist_ok=True)
    return root


def place(
    spec: WorkerSpec, root: Path, lock: str, files: bytes | None, build: BuildConfig
) -> WorkerSpec | str:
    """``spec`` with paths that exist on this node, or :data:`NEEDS_FILES` when the version's
    files are neither here nor in ``files`` (blocking: it may build an environment)."""
    source_dir, python = spec.source_dir, spec.python
    if not source_dir.is_dir():
        source_dir = root / "sources" / spec.source_dir.name
        if not source_dir.is_dir():
            if files is None:
                return NEEDS_FILES
            _unpack(files, source_dir, root)
    if not python.exists():
        if spec.runtime != "python":
            raise Unavailable(
                f"{spec.runtime} environments are not built on Ray nodes: share the gateway's "
                "data folder with the nodes to serve this model on Ray"
            )
        env_hash = spec.python.parent.parent.name
        builder = EnvironmentBuilder(
            root=root / "envs", python=build.python, index_url=build.index_url,
            timeout=build.timeout,
        )  # fmt: skip
        built = builder.ensure(lock, lambda line: logger.debug("%s", line))
        if built.hash != env_hash:
            raise Unavailable(
                f"the version's environment {env_hash[:12]} cannot be built on this Ray node: "
                "its Python is another than the gateway's (ALGORA_PYTHON); give the nodes the "
                "same interpreter"
            )
        python = built.python
    log_path = spec.log_path
    if not log_path.parent.is_dir():
        log_path = root / "logs" / spec.log_path.name
    return replace(spec, source_dir=source_dir, python=python, log_path=log_path)


def _unpack(files: bytes, target: Path, root: Path) -> None:
    staging = root / "staging"
    staging.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=staging) as scratch:
        packed = Path(scratch) / "files.tar.gz"
        packed.write_bytes(files)
        unpacked = Path(scratch) / "files"
        safe_extract(packed, unpacked, max_bytes=_NO_CAP, max_members=_NO_CAP)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            unpacked.rename(target)
        except OSError:  # another actor unpacked the same version first
            if not target.is_dir():
                raise


class NodeWorker:
    """One worker on this node, its frames relayed as bytes, and its tunnel to the gateway."""

    def __init__(self) -> None:
        self._worker: LocalWorker | ZygoteWorker | None = None
        self._folder: Path | None = None
        self._server: asyncio.Server | None = None
        self._accepted: asyncio.Queue[int | None] = asyncio.Queue()
        self._streams: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
        self._ids = itertools.count(1)

    async def start(
        self,
        spec: WorkerSpec,
        data_dir: str,
        lock: str,
        files: bytes | None,
        build: BuildConfig,
    ) -> str | None:
        """Start the worker; None once started, or :data:`NEEDS_FILES`."""
        if self._worker is not None:
            raise RuntimeError("this actor already runs a worker")
        root = await asyncio.to_thread(node_root, Path(data_dir))
        placed = await asyncio.to_thread(place, spec, root, lock, files, build)
        if isinstance(placed, str):
            return placed
        if spec.gateway_folder is not None:
            placed = replace(placed, gateway_folder=await self._serve_tunnel())
        self._worker = await LocalBackend().start(placed, root)
        return None

    def pid(self) -> int | None:
        """The worker's process id on this node."""
        return self._worker.pid if self._worker is not None else None

    async def read(self) -> bytes:
        """The worker's next frame, encoded; raises WorkerDied at its end."""
        header, payload = await self._running().read_frame()
        return encode_frame(header, payload)

    async def send(self, frame: bytes) -> None:
        """Write one encoded frame to the worker; raises WorkerDied if it is gone."""
        try:
            header, payload = decode_frame(frame)
        except FrameError as exc:
            raise WorkerDied(f"a frame for the worker is broken: {exc}") from None
        await self._running().send_frame(header, payload)

    def kill(self) -> None:
        if self._worker is not None:
            self._worker.kill()

    async def wait(self) -> int:
        """The worker's exit status, once it has exited; the tunnel then closes."""
        try:
            return await self._running().wait()
        finally:
            await self._close_tunnel()

    def _running(self) -> LocalWorker | ZygoteWorker:
        if self._worker is None:
            raise WorkerDied("the worker was not started")
        return self._worker

    # -- the tunnel to the gateway's channel ------------------------------------------------

    async def _serve_tunnel(self) -> Path:
        folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="algora-ray-"))
        self._folder = folder
        self._server = await asyncio.start_unix_server(self._connected, folder / SOCKET_NAME)
        (folder / SOCKET_NAME).chmod(0o600)
        return folder

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = next(self._ids)
        self._streams[number] = (reader, writer)
        await self._accepted.put(number)

    async def accept(self) -> int | None:
        """The next connection the worker opened; None once the tunnel is closed."""
        return await self._accepted.get()

    async def receive(self, number: int) -> bytes:
        """Bytes the worker sent on a connection; empty at its end."""
        stream = self._streams.get(number)
        if stream is None:
            return b""
        with contextlib.suppress(ConnectionError):
            return await stream[0].read(_CHUNK)
        return b""

    async def deliver(self, number: int, data: bytes) -> None:
        """Write the gateway's bytes to a connection; empty ``data`` closes it."""
        stream = self._streams.get(number)
        if stream is None:
            return
        writer = stream[1]
        if not data:
            del self._streams[number]
            writer.close()
            return
        with contextlib.suppress(ConnectionError):
            writer.write(data)
            await writer.drain()

    async def _close_tunnel(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for _, writer in self._streams.values():
            writer.close()
        self._streams.clear()
        await self._accepted.put(None)
        if self._folder is not None:
            folder, self._folder = self._folder, None
            await asyncio.to_thread(shutil.rmtree, folder, True)
