"""A pool: the replicas serving one model version, and the queue in front of them.

Each worker handles one call (or one batch) at a time. Calls wait in one bounded FIFO queue for
an idle worker, and a call that could only time out there is refused at once
(``algora.workers.admission``); a model with ``predict_batch`` gets several waiting calls in
one message (``algora.workers.batching``: up to ``max_batch``, after up to ``max_wait`` for the
batch to fill, or as many as a latency target allows). A call whose timeout passes in the queue
fails with CallTimeout untouched; one that has run for its whole timeout on a worker also gets
that worker killed and replaced. A worker that dies fails the calls it held with WorkerDied at
once and is restarted in the background, with exponential backoff while it keeps dying.

When the spec has a ``channel`` opener, each worker gets its own channel to the gateway
(``algora.workers.channel``), opened before the worker starts and closed when it exits; the
pool tells it which calls the worker is serving, and when it is idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from pathlib import Path
from typing import Any

from algora.errors import CallTimeout, ModelLoadFailed, Unavailable, WorkerDied
from algora.workers.admission import ServiceTime, admit
from algora.workers.answers import PendingCall, ProtocolViolation, fail, settle, settle_batch
from algora.workers.autoscale import Autoscaler, Load, scales
from algora.workers.backend import WorkerBackend
from algora.workers.batching import BatchLimit
from algora.workers.replica import Replica, start_replica, wake
from algora.workers.reports import PoolStats, read_log_tail
from algora.workers.sandbox import exit_reason
from algora.workers.spec import CallRequest, CallResult, ModelInfo, WorkerSpec

__all__ = ["Pool", "PoolStats", "read_log_tail"]  # the last two from algora.workers.reports

logger = logging.getLogger(__name__)

_EXIT_STATUS_WAIT = 0.5
_STABLE_AFTER = 30.0
"""A worker that lived this many seconds resets the crash backoff."""
_MAX_BACKOFF = 30.0


class Pool:
    """Replicas of one model version behind one bounded queue."""

    def __init__(self, spec: WorkerSpec, backend: WorkerBackend, data_dir: Path) -> None:
        self.spec = spec
        self._backend = backend
        self._data_dir = data_dir
        self._queue: deque[PendingCall] = deque()
        self._idle: deque[Replica] = deque()
        self._slots: list[Replica | None] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._info: ModelInfo | None = None
        self._state = "new"
        self._restarts = 0
        self._restart_error: ModelLoadFailed | None = None
        self._in_flight = 0
        self._service = ServiceTime()
        self._limit = BatchLimit(spec.max_batch, spec.target_p99)
        self._filling: list[asyncio.Future[None]] = []
        """Workers gathering a batch, woken by each new call."""
        self._scaler: asyncio.Task[None] | None = None
        self._free_slots: list[int] = []
        """Slots whose replica the autoscaler retired, for the next one it starts."""

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def info(self) -> ModelInfo | None:
        """What the model reported when it loaded; None before start."""
        return self._info

    @property
    def running(self) -> bool:
        return self._state == "running"

    @property
    def healthy(self) -> bool:
        """Running with at least one live worker."""
        return self.running and any(w is not None and w.alive for w in self._slots)

    def stats(self) -> PoolStats:
        workers = [w for w in self._slots if w is not None and w.alive]
        return PoolStats(
            replicas=self.spec.replicas,
            alive=len(workers),
            busy=sum(1 for w in workers if w.busy),
            queued=sum(1 for p in self._queue if not p.future.done()),
            in_flight=self._in_flight,
            restarts=self._restarts,
            healthy=self.healthy,
            restart_error=self._restart_error.message if self._restart_error else None,
            pids=tuple(pid for w in workers if (pid := w.handle.pid) is not None),
            batch_sizes=tuple(self._limit.sizes),
        )

    async def start(self) -> ModelInfo:
        """Start every replica and wait until each has loaded the model."""
        if self._state != "new":
            raise RuntimeError(f"pool cannot start: it is {self._state}")
        self._state = "starting"
        results = await asyncio.gather(
            *(self._spawn() for _ in range(self.spec.replicas)), return_exceptions=True
        )
        started = [r for r in results if isinstance(r, tuple)]
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            self._state = "stopped"
            for worker, _ in started:
                worker.handle.kill()
            for worker, _ in started:
                await worker.exited
            first = failures[0]
            if isinstance(first, ModelLoadFailed):
                raise first
            raise ModelLoadFailed(f"worker failed to start: {first}") from first
        self._info = started[0][1]
        self._state = "running"
        self._slots = [worker for worker, _ in started]
        self._tasks = [
            asyncio.create_task(self._run_slot(i), name=f"algora-pool-slot-{i}")
            for i in range(len(self._slots))
        ]
        self._start_scaler()
        return self._info

    def widen(self, spec: WorkerSpec) -> None:
        """Serve on from ``spec`` (only its replica counts differ): start what replicas lack."""
        if self.running and spec != self.spec:
            self.spec = spec
            for _ in range(spec.replicas - self._load().replicas):
                self._tasks.append(asyncio.create_task(self._grow(), name="algora-pool-widen"))
            self._start_scaler()

    def _start_scaler(self) -> None:
        if self._scaler is not None:
            self._scaler.cancel()
        self._scaler = None
        if scales(self.spec):
            scaler = Autoscaler(self.spec, load=self._load, grow=self._grow, shrink=self._shrink)
            self._scaler = asyncio.create_task(scaler.run(), name="algora-pool-autoscale")
            self._tasks.append(self._scaler)

    # -- autoscaling (algora.workers.autoscale) ----------------------------------------------

    def _load(self) -> Load:
        alive = sum(1 for w in self._slots if w is not None and w.alive)
        return Load(replicas=alive, demand=len(self._queue) + self._in_flight)

    async def _grow(self) -> None:
        worker, _ = await self._spawn()
        if self._state != "running":
            worker.handle.kill()
            await worker.exited
            return
        index = self._free_slots.pop() if self._free_slots else len(self._slots)
        if index == len(self._slots):
            self._slots.append(worker)
        else:
            self._slots[index] = worker
        self._tasks.append(asyncio.create_task(self._run_slot(index), name=f"algora-slot-{index}"))
        if self._queue:
            wake(worker)

    def _shrink(self, idle_for: float, most: int) -> int:
        """Retire up to ``most`` replicas idle for ``idle_for`` seconds; return how many."""
        now = asyncio.get_running_loop().time()
        retired = [w for w in self._idle if now - w.idle_since >= idle_for][:most]
        for worker in retired:
            self._idle.remove(worker)
            worker.retired = True
            wake(worker)
        return len(retired)

    async def stop(self, grace: float = 5.0) -> None:
        """Refuse new calls, ask workers to exit after their current call, kill stragglers."""
        if self._state in ("stopping", "stopped", "new"):
            self._state = "stopped"
            return
        self._state = "stopping"
        while self._queue:
            pending = self._queue.popleft()
            fail(pending, Unavailable("the model's pool is stopping"))
        while self._idle:
            wake(self._idle.popleft())
        workers = [w for w in self._slots if w is not None]
        if workers:
            sends = [self._ask_to_exit(w, grace) for w in workers if w.alive]
            await asyncio.gather(*sends)
            _, late = await asyncio.wait([w.exited for w in workers], timeout=grace)
            for worker in workers:
                if worker.exited in late:
                    worker.handle.kill()
            await asyncio.gather(*(w.exited for w in workers), return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._state = "stopped"

    @staticmethod
    async def _ask_to_exit(worker: Replica, grace: float) -> None:
        # Bounded: a stuck worker may not be reading, and a full pipe must not hang stop().
        with contextlib.suppress(WorkerDied, TimeoutError):
            await asyncio.wait_for(worker.handle.send_frame({"type": "shutdown"}), grace)

    # -- calls -----------------------------------------------------------------------------

    async def call(self, request: CallRequest) -> CallResult:
        """Run one call on the next idle worker; raise the error tree's classes on failure."""
        if self._state != "running":
            raise Unavailable("the model's pool is not running")
        if self._restart_error is not None and not self.healthy:
            raise self._no_worker_error()  # fail fast while replacements keep failing
        # Calls that a free (idle or just woken) worker is about to take are not waiting.
        workers = [w for w in self._slots if w is not None and w.alive]
        free = sum(1 for w in workers if not w.busy)
        waiting = len(self._queue) - free
        expected = self._service.expected_wait(waiting + 1, len(workers), self._per_dispatch())
        admit(
            waiting=waiting,
            max_queue=self.spec.max_queue,
            expected_wait=expected,
            timeout=request.timeout,
        )
        loop = asyncio.get_running_loop()
        pending = PendingCall(request, loop.create_future())
        pending.timer = loop.call_later(request.timeout, self._on_timeout, pending)
        pending.queued_at = loop.time()
        self._queue.append(pending)
        if self._idle:
            wake(self._idle.popleft())
        elif self._filling:
            for arrival in self._filling:
                if not arrival.done():
                    arrival.set_result(None)
        try:
            return await pending.future
        finally:
            pending.timer.cancel()
            if pending.future.cancelled() and pending.worker is None:
                with contextlib.suppress(ValueError):  # the caller went away while queued
                    self._queue.remove(pending)

    def _on_timeout(self, pending: PendingCall) -> None:
        if pending.future.done():
            return
        timeout = pending.request.timeout
        pending.future.set_exception(
            CallTimeout(
                f"the model did not answer within {timeout:g}s", details={"timeout": timeout}
            )
        )
        worker = pending.worker
        if worker is None:  # still queued: answered now, never sent to a worker
            with contextlib.suppress(ValueError):
                self._queue.remove(pending)
            return
        # Running: its worker is killed only once the call itself has run for its timeout,
        # not for the time it spent in the queue.
        ran = asyncio.get_running_loop().time() - pending.started
        if ran >= timeout:
            self._kill_for(pending)
        else:
            asyncio.get_running_loop().call_later(timeout - ran, self._kill_for, pending)

    def _kill_for(self, pending: PendingCall) -> None:
        worker = pending.worker
        if isinstance(worker, Replica) and worker.alive:
            logger.warning(
                "call %s ran past its timeout; killing worker %s",
                pending.request.request_id,
                worker.handle.pid,
            )
            worker.timed_out = True
            worker.handle.kill()

    # -- workers ---------------------------------------------------------------------------

    async def _spawn(self) -> tuple[Replica, ModelInfo]:
        worker, info = await start_replica(self.spec, self._backend, self._data_dir)
        worker.exited.add_done_callback(lambda _: self._on_exit(worker))
        return worker, info

    def _on_exit(self, worker: Replica) -> None:
        worker.alive = False
        with contextlib.suppress(ValueError):
            self._idle.remove(worker)
        wake(worker)

    async def _run_slot(self, index: int) -> None:
        """Serve with the slot's worker; replace it whenever it dies, until the pool stops."""
        crashes = 0
        while self._state == "running":
            worker = self._slots[index]
            if worker is None:
                return
            await self._serve(worker)
            if worker.retired and self._state == "running":
                await self._ask_to_exit(worker, 5.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(worker.exited), 5.0)
                worker.handle.kill()
                await worker.exited
                self._slots[index] = None
                self._free_slots.append(index)
                return
            code = await worker.exited
            if self._state != "running":
                return
            loop = asyncio.get_running_loop()
            if worker.timed_out:
                crashes = 0
            elif loop.time() - worker.started_at >= _STABLE_AFTER:
                crashes = 1
            else:
                crashes += 1
            logger.warning(
                "worker %s of %s exited with status %s; restarting",
                worker.handle.pid,
                self.spec.entrypoint,
                code,
            )
            self._restarts += 1
            self._slots[index] = None
            self._slots[index] = await self._respawn(crashes)

    async def _respawn(self, crashes: int) -> Replica | None:
        while self._state == "running":
            if crashes > 1:
                await asyncio.sleep(min(_MAX_BACKOFF, 0.25 * 2 ** (crashes - 2)))
            try:
                worker, _ = await self._spawn()
            except Exception as exc:
                crashes += 1
                error = (
                    exc
                    if isinstance(exc, ModelLoadFailed)
                    else ModelLoadFailed(f"the worker could not start: {exc}")
                )
                logger.error("restarting a worker of %s failed: %s", self.spec.entrypoint, error)
                self._restart_error = error
                if not self.healthy:
                    while self._queue:
                        fail(self._queue.popleft(), self._no_worker_error())
                continue
            self._restart_error = None
            if self._state != "running":
                worker.handle.kill()
                await worker.exited
                return None
            return worker
        return None

    def _no_worker_error(self) -> WorkerDied:
        error = self._restart_error
        reason = error.message if error is not None else "restarting"
        details = error.details if error is not None else {}
        return WorkerDied(f"no worker can serve this model: {reason}", details=details)

    async def _serve(self, worker: Replica) -> None:
        """Take calls from the queue for one worker until it dies or the pool stops."""
        loop = asyncio.get_running_loop()
        while worker.alive and self._state == "running" and not worker.retired:
            limit = self._per_dispatch()
            batch = self._take(limit, [])
            if not batch:
                worker.waiter = loop.create_future()
                worker.idle_since = loop.time()
                self._idle.append(worker)
                await worker.waiter
                continue
            if len(batch) < limit and self.spec.max_wait > 0:
                await self._fill(worker, batch, limit)
            await self._dispatch(worker, batch)
            if self._batches():
                oldest = min(p.queued_at for p in batch)
                self._limit.observe(len(batch), loop.time() - oldest)

    def _per_dispatch(self) -> int:
        return self._limit.value if self._batches() else 1

    def _batches(self) -> bool:
        info = self._info
        return info is not None and (info.batch or self.spec.loop_batches)

    def _take(self, limit: int, batch: list[PendingCall]) -> list[PendingCall]:
        while self._queue and len(batch) < limit:
            pending = self._queue.popleft()
            if not pending.future.done():
                batch.append(pending)
        return batch

    async def _fill(self, worker: Replica, batch: list[PendingCall], limit: int) -> None:
        """Wait up to ``max_wait`` after the batch's first call for more calls to join it."""
        loop = asyncio.get_running_loop()
        deadline = batch[0].queued_at + self.spec.max_wait
        worker.busy = True  # not free for admission while it gathers
        try:
            while len(batch) < limit and (remaining := deadline - loop.time()) > 0:
                arrival: asyncio.Future[None] = loop.create_future()
                self._filling.append(arrival)
                try:
                    await asyncio.wait_for(arrival, remaining)
                except TimeoutError:
                    break
                finally:
                    self._filling.remove(arrival)
                self._take(limit, batch)
        finally:
            worker.busy = False

    async def _dispatch(self, worker: Replica, batch: list[PendingCall]) -> None:
        worker.busy = True
        self._in_flight += len(batch)
        started = asyncio.get_running_loop().time()
        for pending in batch:
            pending.worker = worker
            pending.started = started
        if worker.channel is not None:
            worker.channel.serving([p.request.origin for p in batch])
        try:
            try:
                await self._send(worker, batch)
            except WorkerDied:
                # Never delivered: give the calls back to the queue for another worker.
                for pending in reversed(batch):
                    pending.worker = None
                    self._queue.appendleft(pending)
                if self._idle:
                    wake(self._idle.popleft())
                worker.alive = False
                worker.handle.kill()
                return
            try:
                header, payload = await worker.handle.read_frame()
                self._service.observe(asyncio.get_running_loop().time() - started)
                if len(batch) == 1:
                    settle(batch[0], header, payload)
                else:
                    settle_batch(batch, header, payload)
            except WorkerDied as exc:
                worker.alive = False
                worker.handle.kill()
                await self._fail_held(worker, batch, exc)
            except ProtocolViolation as exc:
                worker.alive = False
                worker.handle.kill()
                await self._fail_held(
                    worker, batch, WorkerDied(f"worker broke the protocol: {exc}")
                )
        finally:
            if worker.channel is not None:
                worker.channel.serving(())  # the credential is worth nothing between calls
            worker.busy = False
            self._in_flight -= len(batch)
            for pending in batch:
                pending.worker = None

    async def _send(self, worker: Replica, batch: list[PendingCall]) -> None:
        if len(batch) == 1:
            req = batch[0].request
            await worker.handle.send_frame({"type": "call", **req.header_fields()}, req.payload)
            return
        items = [{**p.request.header_fields(), "length": len(p.request.payload)} for p in batch]
        payload = b"".join(p.request.payload for p in batch)
        await worker.handle.send_frame({"type": "call_batch", "items": items}, payload)

    async def _fail_held(
        self, worker: Replica, batch: list[PendingCall], cause: WorkerDied
    ) -> None:
        if all(p.future.done() for p in batch):
            return
        status: int | None = None
        with contextlib.suppress(TimeoutError):
            status = await asyncio.wait_for(asyncio.shield(worker.exited), _EXIT_STATUS_WAIT)
        message = "the worker died while handling the call"
        details: dict[str, Any] = {"exit_status": status, "reason": cause.message}
        limit = exit_reason(self.spec, status) if status is not None else None
        if limit is not None:
            details["limit"] = limit[0]
            message = f"the worker {limit[1]} while handling the call"
        if status is not None:
            message += f" (exit status {status})"
        if limit is not None:
            message += "; it is being restarted"
        for pending in batch:
            fail(pending, WorkerDied(message, details=details))
