"""The Ray worker backend (``ALGORA_WORKER_BACKEND=ray``): each worker an actor on a Ray node.

The only module that imports Ray, and only the platform imports it, when the setting asks for
it. Each replica is an actor (``algora.workers.ray_actor.NodeWorker``) placed on the live node
that runs the fewest replicas of its version, so a pool's replicas spread across the nodes; it
starts the version's worker on its node and relays the worker's frames, which this side reads
and writes as a :class:`~algora.workers.backend.WorkerHandle`, so the pool above (batching,
timeouts, restarts) is the local workers' own. Only bytes cross Ray: encoded frames, the packed
files of a version, and a channel's HTTP traffic.

An actor that dies, or the node under it, ends its worker's frames: its calls fail with
WorkerDied (503 ``worker_died``) and the pool starts a new replica, which Ray places on a live
node. A model's requests to the gateway arrive on the actor's socket on the node and are relayed
here to the worker's channel (``algora.gateway.channels``), which authenticates them as it does
for a local worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from algora.environments.builder import LOCK_FILE
from algora.errors import AlgoraError, Unavailable, WorkerDied
from algora.modelfolder.packing import pack_directory
from algora.runtime.frames import FrameError, decode_frame, encode_frame
from algora.workers.backend import Frame
from algora.workers.channel import SOCKET_NAME
from algora.workers.ray_actor import NEEDS_FILES, BuildConfig, NodeWorker
from algora.workers.spec import WorkerSpec

__all__ = ["RayBackend", "RayWorker"]

logger = logging.getLogger(__name__)

_NAMESPACE = "algora"
_CHUNK = 1 << 16
_LOST = -9
"""The exit status reported for a worker whose actor (or node) died under it."""

_connected = threading.Lock()


class RayBackend:
    """Starts workers as actors on the Ray cluster at ``address`` (``auto``: this machine's)."""

    def __init__(self, address: str, build: BuildConfig) -> None:
        self._address = address
        self._build = build
        self._actor_class: Any = None
        self._placed: dict[str, Counter[str]] = {}
        """Live replicas of each version (by its files' hash) on each node."""

    def _connect(self) -> None:
        with _connected:
            if self._actor_class is not None:
                return
            if not ray.is_initialized():
                try:
                    ray.init(
                        address=self._address,
                        namespace=_NAMESPACE,
                        log_to_driver=False,
                        configure_logging=False,
                    )
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    raise Unavailable(
                        f"cannot reach the Ray cluster at {self._address!r} "
                        f"(ALGORA_RAY_ADDRESS): {exc}; start it with `ray start --head`, or "
                        "set ALGORA_WORKER_BACKEND=local"
                    ) from None
            self._actor_class = ray.remote(NodeWorker)

    async def start(self, spec: WorkerSpec, data_dir: Path) -> RayWorker:
        await asyncio.to_thread(self._connect)
        alive = await asyncio.to_thread(_alive_nodes)
        # Chosen and counted at once: the replicas a pool starts together spread too.
        placed = self._placed.setdefault(spec.source_dir.name, Counter())
        node = min(alive, key=lambda name: (placed[name], name)) if alive else None
        if node is not None:
            placed[node] += 1
        try:
            actor = await self._start_actor(spec, data_dir, node)
        except BaseException:
            _forget(placed, node)
            raise
        return RayWorker(actor, spec.gateway_folder, on_exit=lambda: _forget(placed, node))

    async def _start_actor(
        self, spec: WorkerSpec, data_dir: Path, node: str | None
    ) -> ActorHandle[NodeWorker]:
        actor: ActorHandle[NodeWorker] = self._actor_class.options(
            scheduling_strategy=_on(node), num_cpus=0, max_restarts=0
        ).remote()
        shipped = replace(spec, channel=None)
        try:
            try:  # placed and constructed: a node that died unnoticed would hold it forever
                async with asyncio.timeout(spec.start_timeout):
                    await actor.pid.remote()
            except TimeoutError:
                raise Unavailable(
                    f"no Ray node took the worker within {spec.start_timeout:g}s: see `ray "
                    "status` for the cluster's live nodes"
                ) from None
            lock = await asyncio.to_thread(_read_lock, spec)
            missing = await actor.start.remote(shipped, str(data_dir), lock, None, self._build)
            if missing == NEEDS_FILES:
                # Once per node and version: the node keeps what it unpacked.
                files = await asyncio.to_thread(_packed, spec.source_dir)
                missing = await actor.start.remote(shipped, str(data_dir), lock, files, self._build)
            if missing is not None:
                raise Unavailable(f"the Ray node lacks the version's {missing}")
        except RayError as exc:
            ray.kill(actor, no_restart=True)
            cause = getattr(exc, "cause", None)
            if isinstance(cause, AlgoraError):
                raise cause from None
            raise Unavailable(f"Ray could not start the worker: {exc}") from None
        except BaseException:
            ray.kill(actor, no_restart=True)
            raise
        return actor


def _alive_nodes() -> list[str]:
    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]  # Ray's own
    return [str(node["NodeID"]) for node in nodes if node.get("Alive")]


def _on(node: str | None) -> NodeAffinitySchedulingStrategy | str:
    """Where an actor goes: on ``node``. Not a soft affinity, which Ray spills to the node the
    driver is on whenever it likes; should ``node`` die first, the start fails and the pool's
    next try picks among the live nodes."""
    return "SPREAD" if node is None else NodeAffinitySchedulingStrategy(node, soft=False)


def _forget(placed: Counter[str], node: str | None) -> None:
    if node is not None and placed[node] > 0:
        placed[node] -= 1


def _packed(source_dir: Path) -> bytes:
    buffer = io.BytesIO()
    pack_directory(source_dir, buffer)
    return buffer.getvalue()


def _read_lock(spec: WorkerSpec) -> str:
    path = spec.python.parent.parent / LOCK_FILE
    return path.read_text() if path.is_file() else ""


class RayWorker:
    """The gateway's side of one worker on a Ray node: frames through its actor."""

    def __init__(
        self,
        actor: ActorHandle[NodeWorker],
        gateway_folder: Path | None,
        on_exit: Callable[[], None] = lambda: None,
    ) -> None:
        self._actor = actor
        self._on_exit = on_exit
        self._code: int | None = None
        self._tunnel: asyncio.Task[None] | None = None
        if gateway_folder is not None:
            self._tunnel = asyncio.create_task(
                _tunnel(actor, gateway_folder / SOCKET_NAME), name="algora-ray-tunnel"
            )

    @property
    def pid(self) -> None:
        """None: the worker's process runs on a Ray node, maybe another machine."""
        return None

    @property
    def returncode(self) -> int | None:
        return self._code

    async def send_frame(self, header: dict[str, Any], payload: bytes = b"") -> None:
        try:
            await self._actor.send.remote(encode_frame(header, payload))
        except RayError as exc:
            raise WorkerDied(_why(exc)) from None

    async def read_frame(self) -> Frame:
        try:
            frame = await self._actor.read.remote()
        except RayError as exc:
            raise WorkerDied(_why(exc)) from None
        try:
            return decode_frame(frame)
        except FrameError as exc:
            self.kill()
            raise WorkerDied(f"worker broke the protocol: {exc}") from None

    def kill(self) -> None:
        if self._code is None:
            self._actor.kill.remote()

    async def wait(self) -> int:
        if self._code is not None:
            return self._code
        try:
            code: int = await self._actor.wait.remote()
        except RayError:
            code = _LOST
        finally:
            if self._tunnel is not None:
                self._tunnel.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._tunnel
            ray.kill(self._actor, no_restart=True)
            self._on_exit()
        self._code = code
        return code


def _why(exc: RayError) -> str:
    cause = getattr(exc, "cause", None)
    if isinstance(cause, AlgoraError):
        return cause.message
    return f"the worker's Ray actor is gone ({type(exc).__name__})"


async def _tunnel(actor: ActorHandle[NodeWorker], socket_path: Path) -> None:
    """Relay each connection the worker opens on its node to its channel's socket here."""
    pipes: set[asyncio.Task[None]] = set()
    try:
        while (number := await actor.accept.remote()) is not None:
            pipe = asyncio.create_task(_pipe(actor, number, socket_path), name="algora-ray-pipe")
            pipes.add(pipe)
            pipe.add_done_callback(pipes.discard)
    except RayError:
        pass  # the actor is gone: so is every connection of its worker
    finally:
        for pipe in list(pipes):
            pipe.cancel()


async def _pipe(actor: ActorHandle[NodeWorker], number: int, socket_path: Path) -> None:
    try:
        reader, writer = await asyncio.open_unix_connection(socket_path)
    except OSError:  # the channel is closed: so is the worker's connection
        with contextlib.suppress(RayError):
            await actor.deliver.remote(number, b"")
        return

    async def upstream() -> None:
        while data := await actor.receive.remote(number):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    async def downstream() -> None:
        while data := await reader.read(_CHUNK):
            await actor.deliver.remote(number, data)
        await actor.deliver.remote(number, b"")

    try:
        await asyncio.gather(upstream(), downstream())
    except (RayError, ConnectionError):
        logger.debug("a tunnelled connection of a Ray worker ended early", exc_info=True)
    finally:
        writer.close()
