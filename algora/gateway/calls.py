"""The one call path: resolve -> authorize -> admit (rate limit) -> dispatch to the pool.

Every protocol adapter parses its wire format and hands a :class:`Call` here. Version
resolution is cached for a moment so that the hot path rarely touches the database; a local
publish or deprecation clears the cache at once.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from algora.auth.policy import require, require_scope
from algora.auth.principals import Caller
from algora.auth.ratelimit import RateLimiter
from algora.db.tables import Model, Version
from algora.errors import CallTimeout, ModelLoadFailed, Unavailable, VersionNotReady
from algora.gateway.auditing import AuditTrail
from algora.registry.manifest import Manifest
from algora.registry.service import Registry
from algora.registry.serving import worker_spec
from algora.registry.specs import parse_spec
from algora.settings import Settings
from algora.workers.manager import PoolManager
from algora.workers.pool import Pool
from algora.workers.spec import CallRequest, CallResult, WorkerSpec

__all__ = ["Call", "CallService", "Served", "new_request_id"]

_RESOLVE_SECONDS = 2.0


_REQUEST_PREFIX = os.urandom(8).hex()
_request_numbers = itertools.count(1)


def new_request_id() -> str:
    """Unique across gateways (a random per-process prefix) and cheap: no syscall per call."""
    return f"req-{_REQUEST_PREFIX}{next(_request_numbers):012x}"


@dataclass(frozen=True)
class Call:
    caller: Caller
    owner: str
    name: str
    spec: str | None
    content_type: Literal["json", "text", "binary"]
    payload: bytes
    timeout: float | None = None
    request_id: str = ""
    trail: AuditTrail = field(default_factory=AuditTrail)
    """Where the call path notes the version it resolved, for the audit row (also on failure)."""
    admitted: bool = False
    """True when the adapter already took the call's rate-limit token (see ``admit``)."""


@dataclass(frozen=True)
class Served:
    """What answered a call: the version actually served and its result."""

    model: Model
    version: Version
    result: CallResult
    request_id: str


class CallService:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        pools: PoolManager,
        environment_python: Callable[[str], Path],
        limiter: RateLimiter,
    ) -> None:
        self._settings = settings
        self._limiter = limiter
        self._registry = registry
        self._pools = pools
        self._python = environment_python
        self._resolved: dict[tuple[str, str, str], tuple[float, Model, Version]] = {}
        self._worker_logs = settings.resolved_data_dir / "logs" / "workers"

    def forget(self) -> None:
        """Drop cached resolutions (after a publish, deprecation or alias move)."""
        self._resolved.clear()

    async def resolve(
        self, caller: Caller, owner: str, name: str, spec_text: str | None
    ) -> tuple[Model, Version]:
        """The version a spec names, once the caller is known to be allowed to call the model.

        The permission check comes before any version lookup, so a stranger learns nothing
        about a private model's versions or failures.
        """
        spec = parse_spec(spec_text)
        key = (owner, name, str(spec))
        now = time.monotonic()
        cached = self._resolved.get(key)
        if cached is not None and cached[0] > now:
            require(caller, "call", cached[1])
            return cached[1], cached[2]
        model, version = await asyncio.to_thread(self._registry.resolve, owner, name, spec, caller)
        if len(self._resolved) > 10_000:
            self._resolved.clear()
        self._resolved[key] = (now + _RESOLVE_SECONDS, model, version)
        return model, version

    def worker_spec(self, version: Version) -> WorkerSpec:
        if version.environment_hash is None or version.content_hash is None:
            raise VersionNotReady(f"version {version.semver} has no environment yet")
        manifest = Manifest.model_validate(version.manifest)
        return worker_spec(
            self._settings,
            manifest,
            python=self._python(version.environment_hash),
            source_dir=self._settings.resolved_data_dir / "sources" / version.content_hash,
            log_path=self._worker_logs / f"{version.id}.log",
        )

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
                self._pools.get(str(version.id), self.worker_spec(version)), timeout
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
        self._limiter.check(caller.key_id, f"{owner}/{name}", caller.limits)

    async def call(self, call: Call) -> Served:
        require_scope(call.caller, "call", f"{call.owner}/{call.name}")
        model, version = await self.resolve(call.caller, call.owner, call.name, call.spec)
        call.trail.version = version.semver
        if not call.admitted:
            self.admit(call.caller, model.owner.name, model.name)
        timeout = self.timeout_for(version, call.timeout)
        started = time.monotonic()
        pool = await self._pool(model, version, timeout)
        request_id = call.request_id or new_request_id()
        result = await pool.call(
            CallRequest(
                request_id=request_id,
                content_type=call.content_type,
                payload=call.payload,
                timeout=max(0.001, timeout - (time.monotonic() - started)),
            )
        )
        return Served(model=model, version=version, result=result, request_id=request_id)
