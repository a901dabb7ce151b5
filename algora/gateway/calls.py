"""The one call path: resolve -> authorize -> admit (rate limit) -> dispatch to the pool.

A call may ask for the model's captured stdout (granted only to callers who may manage the
model) or run in the background (``call_void``: resolved, authorized and admitted at once, then
dispatched while the caller already has its answer, with the outcome in the audit log).

Every protocol adapter parses its wire format and hands a :class:`Call` here. Version
resolution is cached for a moment so that the hot path rarely touches the database; a local
publish or deprecation clears the cache at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from algora.audit.log import AuditLog
from algora.auth.delegation import accountable_key_id
from algora.auth.policy import require, require_scope
from algora.auth.principals import Caller
from algora.auth.ratelimit import RateLimiter
from algora.db.tables import Model, Version
from algora.errors import (
    AlgoraError,
    CallTimeout,
    ModelError,
    ModelLoadFailed,
    Unavailable,
    VersionNotReady,
)
from algora.gateway.auditing import AuditTrail, call_event
from algora.gateway.call_types import Call, Served, may_manage, new_request_id
from algora.gateway.channels import CallOrigin, Channels
from algora.gateway.ledger import CallLedger
from algora.gateway.metrics import Metrics
from algora.gateway.shadows import Shadows
from algora.gateway.tracing import Tracing
from algora.modelfolder.manifest import Manifest
from algora.registry.drift_counts import DriftCounts
from algora.registry.records import CallRecords
from algora.registry.routing import AliasRoutes, Routing
from algora.registry.sampler import Sampler
from algora.registry.secrets import ModelSecrets
from algora.registry.service import Registry
from algora.registry.serving import with_secrets, worker_spec
from algora.registry.specs import VersionSpec, is_alias_name, parse_spec
from algora.settings import Settings
from algora.store.model_data import drop_session, new_session, session_written
from algora.workers.manager import PoolManager
from algora.workers.pool import Pool
from algora.workers.spec import CallRequest, CallResult, WorkerSpec

__all__ = ["Call", "CallService", "Served", "may_manage", "new_request_id"]

Resolution = tuple[Model, Version, Routing | None]
"""A spec resolved: the model, the version it names and, for an alias that splits or shadows
its calls, where they go."""

RunPipeline = Callable[["Call", Model, Version, float], Awaitable["Served"]]
"""Runs a call of a pipeline's version, to end by a deadline (``time.monotonic()``)."""

logger = logging.getLogger(__name__)

_RESOLVE_SECONDS = 2.0
_STALE_GRACE_SECONDS = 5.0
"""How long past its freshness a resolution may still answer while one refresh runs: under
steady traffic no call waits for the database, and an idle cache is never trusted."""


class CallService:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        pools: PoolManager,
        environment_python: Callable[[str], Path],
        limiter: RateLimiter,
        audit: AuditLog | None = None,
        secrets: ModelSecrets | None = None,
        channels: Channels | None = None,
        ledger: CallLedger | None = None,
        records: CallRecords | None = None,
        tracing: Tracing | None = None,
        routes: AliasRoutes | None = None,
        metrics: Metrics | None = None,
        sampler: Sampler | None = None,
        drift: DriftCounts | None = None,
    ) -> None:
        self._settings = settings
        self._sampler = sampler
        self._ledger = ledger
        self._records, self._drift = records, drift
        self._tracing = tracing
        self._routes = routes
        self._shadows = Shadows(metrics)
        self._channels = channels
        self._audit = audit
        self._secrets = secrets
        self._background: set[asyncio.Task[None]] = set()
        self._limiter = limiter
        self._registry = registry
        self._pools = pools
        self._python = environment_python
        self._resolved: dict[tuple[str, str, str], tuple[float, Resolution]] = {}
        self._refreshing: set[tuple[str, str, str]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.on_forget: Callable[[], None] | None = None
        """Told when this gateway forgets its resolutions because of a change it made."""
        self.run_pipeline: RunPipeline | None = None
        """Set by the platform: runs a pipeline's steps (``algora.gateway.pipelines``)."""
        self._generation = 0  # bumped by forget(): a refresh begun before it is dropped
        # Resolved once: resolving it stats every folder above it, and every call needs it.
        self._data_dir = settings.resolved_data_dir
        self._worker_logs = self._data_dir / "logs" / "workers"

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the gateway serves on (for what other threads ask of this service)."""
        self._loop = loop

    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the gateway serves on, once attached."""
        return self._loop

    def warm(self, version_id: int) -> None:
        """Start a newly built version's workers in the background, if it is ready (thread
        safe: builds finish on their own threads)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def start() -> None:
            task = loop.create_task(self._warm(version_id))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

        loop.call_soon_threadsafe(start)

    def warm_now(self, version_id: int) -> None:
        """Start a ready version's workers and wait until they have loaded or failed to
        (blocking: from a service's thread, before traffic moves to it)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        started = asyncio.run_coroutine_threadsafe(self._warm(version_id), loop)
        with contextlib.suppress(TimeoutError):
            started.result(timeout=self._settings.worker_start_timeout)

    async def _warm(self, version_id: int) -> None:
        try:
            version = await asyncio.to_thread(self._registry.version_by_id, version_id)
            if version.status != "ready" or version.manifest.get("pipeline"):
                return  # not servable yet, or a pipeline: its steps' pools serve it
            spec = await self._serving_spec(version)
            pool = await self._pools.get(str(version.id), spec)
            pool.widen(spec)  # the publish's smoke-tested worker, when it was handed over
        except Exception as error:  # the first call will say why, in its own answer
            logger.info("could not warm version #%s: %s", version_id, error)

    def forget(self) -> None:
        """Drop cached resolutions (after a publish, deprecation or alias move), here at once
        and, through ``on_forget`` (the platform's change feed), on the other gateways."""
        self.forget_here()
        if self.on_forget is not None:
            self.on_forget()

    def forget_here(self) -> None:
        """Drop this gateway's cached resolutions (another gateway changed something)."""
        self._generation += 1
        self._resolved.clear()

    async def resolve(
        self, caller: Caller, owner: str, name: str, spec_text: str | None
    ) -> tuple[Model, Version]:
        """The version a spec names, once the caller is known to be allowed to call the model
        (for an alias that splits its calls, the version this call goes to).

        The permission check comes before any version lookup, so a stranger learns nothing
        about a private model's versions or failures.
        """
        model, version, routing = await self._resolution(caller, owner, name, spec_text)
        return model, routing.pick(accountable_key_id(caller)) if routing is not None else version

    async def _resolution(
        self, caller: Caller, owner: str, name: str, spec_text: str | None
    ) -> Resolution:
        spec = parse_spec(spec_text)
        if spec.right == "manage":
            require_scope(caller, "models:manage")
        key = (owner, name, str(spec))
        now = time.monotonic()
        cached = self._resolved.get(key)
        if cached is not None and cached[0] + _STALE_GRACE_SECONDS > now:
            require(caller, spec.right, cached[1][0])
            if cached[0] <= now and key not in self._refreshing:
                self._refresh(key, spec)
            return cached[1]
        generation = self._generation
        resolution = await asyncio.to_thread(self._lookup, owner, name, spec, caller)
        self._remember(key, generation, resolution)
        return resolution

    def _lookup(
        self, owner: str, name: str, spec: VersionSpec, caller: Caller | None = None
    ) -> Resolution:
        """The model, the version the spec names and, for an alias, its routing (blocking)."""
        model, version = self._registry.resolve(owner, name, spec, caller)
        routing = None
        if spec.kind == "alias" and self._routes is not None:
            routing = self._routes.routing(model.id, str(spec.alias))
        return model, version, routing

    def _remember(self, key: tuple[str, str, str], generation: int, resolution: Resolution) -> None:
        if generation != self._generation:
            return  # resolved before a change this gateway made: not to be trusted
        if len(self._resolved) > 10_000:
            self._resolved.clear()
        self._resolved[key] = (time.monotonic() + _RESOLVE_SECONDS, resolution)

    def _refresh(self, key: tuple[str, str, str], spec: VersionSpec) -> None:
        """Resolve ``key`` again in the background (one at a time per key); when it no longer
        resolves, forget it, so that the next call resolves it with its own caller's rights."""
        self._refreshing.add(key)
        generation = self._generation

        async def refresh() -> None:
            try:
                resolution = await asyncio.to_thread(self._lookup, key[0], key[1], spec)
            except Exception:
                self._resolved.pop(key, None)
            else:
                self._remember(key, generation, resolution)
            finally:
                self._refreshing.discard(key)

        task = asyncio.create_task(refresh())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def worker_spec(self, version: Version) -> WorkerSpec:
        if version.environment_hash is None or version.content_hash is None:
            raise VersionNotReady(f"version {version.semver} has no environment yet")
        manifest = Manifest.model_validate(version.manifest)
        spec = worker_spec(
            self._settings,
            manifest,
            python=self._python(version.environment_hash),
            source_dir=self._data_dir / "sources" / version.content_hash,
            log_path=self._worker_logs / f"{version.id}.log",
        )
        # Each worker gets a channel to this gateway: its model calls models and reads data.
        channels = self._channels
        opener = channels.opener(version.model, version.id) if channels is not None else None
        return replace(spec, channel=opener) if opener is not None else spec

    async def _serving_spec(self, version: Version) -> WorkerSpec:
        """The version's worker spec with its model's secrets in the workers' environment
        (the platform's own variables win over a secret of the same name)."""
        spec = self.worker_spec(version)
        if self._secrets is None:
            return spec
        secrets = await asyncio.to_thread(self._secrets.environment, version.model_id)
        return with_secrets(spec, secrets)

    async def _pool(self, model: Model, version: Version, timeout: float) -> Pool:
        """The version's running pool; a cold start counts against the call's timeout.

        The start goes on in the background when the caller gives up, so the next call finds
        the pool ready.
        """
        running = self._pools.running(str(version.id))
        if running is not None:
            return running
        label = f"'{model.owner.name}/{model.name}' {version.semver}"
        try:
            return await asyncio.wait_for(
                self._pools.get(str(version.id), await self._serving_spec(version)), timeout
            )
        except TimeoutError:
            raise CallTimeout(
                f"{label} was still loading after {timeout:g} s; retry in a moment",
                details={"loading": True},
            ) from None
        except ModelLoadFailed as exc:
            raise Unavailable(
                f"{label} could not be loaded on this server: {exc.message}; its owner can "
                "read the worker log, and callers may retry later",
                details={"error_type": exc.details.get("error_type", "")},
            ) from None

    def timeout_for(self, version: Version, requested: float | None) -> float:
        manifest_timeout = float(version.manifest.get("serving", {}).get("timeout", 0) or 0)
        timeout = requested or manifest_timeout or self._settings.default_call_timeout
        return max(0.001, min(timeout, self._settings.max_call_timeout))

    def admit(self, caller: Caller, owner: str, name: str) -> None:
        """Take a token from the caller's own limit (and its limit for this model), or raise
        RateLimited. Adapters may admit before reading the body, so that a refused call
        costs little; they then pass ``admitted=True``. The key's ``call`` scope for the model
        is checked first."""
        require_scope(caller, "call", f"{owner}/{name}")
        self._limiter.check(accountable_key_id(caller), f"{owner}/{name}", caller.limits)
        if self._ledger is not None:
            self._ledger.admit(caller)

    async def _authorize(self, call: Call) -> tuple[Model, Version]:
        """The model and the version the call goes to; a copy goes to the alias's shadow."""
        require_scope(call.caller, "call", f"{call.owner}/{call.name}")
        model, version, routing = await self._resolution(
            call.caller, call.owner, call.name, call.spec
        )
        if routing is not None:
            version = routing.pick(accountable_key_id(call.caller))
        call.trail.version = version.semver
        if call.spec and call.spec[0].isalpha() and is_alias_name(call.spec):
            call.trail.alias = call.spec
        if not call.admitted:
            self.admit(call.caller, model.owner.name, model.name)
        if routing is not None and routing.shadow is not None:
            copy = replace(
                call, request_id="", stdout=False, trail=AuditTrail(), shadow_of=call.request_id
            )
            dispatch = functools.partial(self._dispatch, copy, model, routing.shadow)
            self._shadows.send(dispatch, model, routing.shadow, call.spec or "")
        return model, version

    async def call(self, call: Call) -> Served:
        model, version = await self._authorize(call)
        return await self._dispatch(call, model, version)

    async def call_void(self, call: Call) -> tuple[Model, Version]:
        """Resolve, authorize and admit now (raising as ``call`` does); dispatch in the
        background. The outcome is recorded in the audit log as ``model.call.void``, under the
        call's request id, once the model has answered."""
        model, version = await self._authorize(call)
        task = asyncio.create_task(self._run_void(call, model, version))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return model, version

    async def _run_void(self, call: Call, model: Model, version: Version) -> None:
        received_at = datetime.now(UTC)
        started = time.perf_counter()
        failure: AlgoraError | None = None
        try:
            await self._dispatch(call, model, version)
        except AlgoraError as error:
            failure = error
        except Exception:
            logger.exception("background call %s failed", call.request_id)
            failure = AlgoraError("the background call failed")
        if self._audit is None:
            return
        resource = f"{model.owner.name}/{model.name}"
        event = call_event(
            call.caller, "model.call.void", resource, version.semver, call.request_id or None,
            received_at, started, failure,
        )  # fmt: skip
        try:
            await self._audit.record(event)
        except AlgoraError:
            logger.exception("could not record the outcome of background call %s", call.request_id)

    async def _dispatch(self, call: Call, model: Model, version: Version) -> Served:
        """Send the call to the version's pool, counted in the version's statistics (and, with
        tracing on, in a span)."""
        if self._tracing is not None:
            return await self._traced(call, model, version)
        return await self._counted(call, model, version)

    async def _traced(self, call: Call, model: Model, version: Version) -> Served:
        assert self._tracing is not None
        trail, delegation = call.trail, call.caller.delegation
        call = call if call.request_id else replace(call, request_id=new_request_id())
        with self._tracing.call(
            f"{model.owner.name}/{model.name}", version.semver, call.request_id,
            traceparent=trail.traceparent, alias=trail.alias,
            parent_request_id=delegation.request_id if delegation is not None else None,
        ) as trace_id:  # fmt: skip
            trail.trace_id = trace_id
            return await self._counted(call, model, version)

    async def _counted(self, call: Call, model: Model, version: Version) -> Served:
        if self._ledger is None:
            return await self._send(call, model, version)
        started = time.perf_counter()
        failure: BaseException | None = None
        answer, compute = b"", 0.0
        result: CallResult | None = None
        request_id = call.request_id
        try:
            served = await self._send(call, model, version)
            result, request_id = served.result, served.request_id
            answer, compute = result.payload, result.cpu
            if self._records is not None:
                self._records.record(call, model, version, request_id, result)
            if self._drift is not None:
                self._drift.record(version, call.content_type, call.payload, result)
            return served
        except BaseException as error:  # counted (a hang-up too), then raised as it is
            failure = error
            raise
        finally:
            seconds = time.perf_counter() - started
            sizes = (len(call.payload), len(answer))
            self._ledger.record(call.caller, model.id, version.id, failure, seconds, sizes, compute)
            if self._sampler is not None:
                self._sampler.offer(
                    call, model, version, request_id or new_request_id(), call.content_type,
                    call.payload, result, failure,
                )  # fmt: skip

    async def _send(self, call: Call, model: Model, version: Version) -> Served:
        timeout = self.timeout_for(version, call.timeout)
        started = time.monotonic()
        delegation = call.caller.delegation
        if delegation is not None and delegation.deadline is not None:
            # A call from inside a model ends, at the latest, when the call it serves does.
            timeout = max(0.001, min(timeout, delegation.deadline - started))
        if self.run_pipeline is not None and version.manifest.get("pipeline"):
            return await self.run_pipeline(call, model, version, started + timeout)
        pool = await self._pool(model, version, timeout)
        request_id = call.request_id or new_request_id()
        # The call tree's scratch space (data://.session): opened by the original call.
        session = delegation.session if delegation is not None else None
        opened = session is None
        session = session or new_session()
        remaining = max(0.001, timeout - (time.monotonic() - started))
        origin = CallOrigin(call.caller, model, request_id, session, time.monotonic() + remaining)
        try:
            result = await pool.call(
                CallRequest(
                    request_id=request_id,
                    content_type=call.content_type,
                    payload=call.payload,
                    timeout=remaining,
                    origin=origin,
                    fields=call.fields,
                )
            )
        except ModelError as error:
            if may_manage(call.caller, model):
                raise
            raise error.for_callers() from None
        finally:
            if opened and session_written(self._data_dir, session):
                await asyncio.to_thread(drop_session, self._data_dir, session)
        stdout = result.stdout if call.stdout and may_manage(call.caller, model) else None
        return Served(
            model=model, version=version, result=result, request_id=request_id, stdout=stdout
        )
