"""The platform's parts, built once from Settings and shared by every route."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from algora.audit.log import AuditLog
from algora.audit.queries import AuditQueries
from algora.auth.accounts import Accounts
from algora.auth.bootstrap import ensure_admin
from algora.auth.keyring import Keyring
from algora.auth.principals import Authenticator, Caller
from algora.auth.ratelimit import Limit, RateLimiter
from algora.auth.shared_buckets import DatabaseBuckets
from algora.db.engine import create_registry_engine, make_session_factory, ping
from algora.db.migrate import startup_lock, upgrade
from algora.db.tables import Model
from algora.environments.builder import EnvironmentBuilder
from algora.errors import AlgoraError, ModelNotFound
from algora.gateway.calls import CallService
from algora.gateway.changes import ChangeFeed
from algora.gateway.channels import CallOrigin, Channels
from algora.gateway.ledger import CallLedger
from algora.gateway.metrics import Metrics
from algora.gateway.pipelines import Pipelines
from algora.gateway.tracing import open_tracing
from algora.publishing.builds import Builds
from algora.publishing.publish import Publisher, SmokeAccess
from algora.publishing.smoke import HandOff
from algora.publishing.uploads import Uploads
from algora.registry.alert_engine import AlertEngine
from algora.registry.alerts import AlertRules
from algora.registry.aliases import Aliases, AliasPolicy
from algora.registry.catalog import Catalog
from algora.registry.compare import Comparisons
from algora.registry.drift import Drift
from algora.registry.drift_counts import DriftCounts
from algora.registry.feedback import Feedback
from algora.registry.leases import Leases
from algora.registry.quotas import Quotas
from algora.registry.records import CallRecords
from algora.registry.reports import ModelReports
from algora.registry.rollups import Rollups
from algora.registry.routing import AliasRoutes
from algora.registry.sampler import Sampler
from algora.registry.sampling import Sampling
from algora.registry.secrets import ManagedSecrets, ModelSecrets
from algora.registry.service import Registry
from algora.registry.sources import Sources
from algora.registry.stats import Statistics
from algora.registry.usage import Usage
from algora.settings import Settings
from algora.store.connectors import Connectors
from algora.store.data import DataSpaces
from algora.store.factory import check_store, open_store
from algora.store.model_data import new_session
from algora.store.s3 import S3BlobStore
from algora.store.version_files import MaterialisingBackend, VersionFiles
from algora.workers.backend import WorkerBackend
from algora.workers.local import LocalBackend
from algora.workers.manager import PoolManager
from algora.workers.memory import budget_bytes
from algora.workers.pool import Pool
from algora.workers.ray_actor import BuildConfig
from algora.workers.sandbox import sandbox_notice
from algora.workers.zygote import Zygotes

__all__ = ["Platform"]

logger = logging.getLogger(__name__)


class Platform:
    """Registry, store, environments, pools and the call path, wired together.

    Construction wires the parts and creates the data directory's folders; it touches no
    database rows. :meth:`open` is how servers and tests get a platform ready to serve.
    """

    new_admin_key: str | None = None
    """The admin's key when :meth:`open` created it (the first start); None otherwise."""

    @classmethod
    def open(cls, settings: Settings) -> Platform:
        """A platform ready to serve: the start-up work done once, in this order.

        Migrates the registry to the newest schema, marks builds that a previous server left
        unfinished as failed, creates the admin and its key on the first start (kept in
        :attr:`new_admin_key`), removes what uploads cut off by a crash left behind, and logs
        what the sandbox setting means on this machine. Gateways starting at once on one
        registry do the first four steps one after another (:func:`startup_lock`).
        """
        platform = cls(settings)
        try:
            check_store(platform.store, settings)
            with startup_lock(platform.engine, settings.resolved_data_dir):
                platform._start_up(settings)
            swept = platform.data_spaces.sweep_interrupted_uploads()
            if swept:
                logger.warning("removed %d upload(s) left unfinished by a crash", swept)
        except BaseException:
            platform.publisher.shutdown()
            platform.builds.shutdown()
            platform.engine.dispose()
            raise
        notice = sandbox_notice(settings.sandbox)
        if notice is not None:
            logger.log(*notice)
        return platform

    def _start_up(self, settings: Settings) -> None:
        upgrade(self.engine)
        self.leases.take()
        self.leases.on_sweep("interrupted build(s)", self.registry.fail_interrupted_builds)
        self.leases.on_sweep("interrupted source build(s)", self.builds.fail_interrupted)
        self.leases.renew_and_sweep()
        self.new_admin_key = ensure_admin(self.sessions, settings.resolved_data_dir)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        data = settings.resolved_data_dir
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
        data.chmod(0o700)
        self.store = open_store(settings)
        """Version artifacts: the local store, or an S3 bucket that gateways share."""
        self.engine = create_registry_engine(settings.resolved_database_url)
        self.sessions = make_session_factory(self.engine)
        self.audit = AuditLog(
            self.sessions,
            enabled=settings.audit_enabled,
            max_commit_lag=settings.audit_max_commit_lag,
            trusted_proxies=settings.trusted_proxies,
            in_process=settings.audit_in_process,
        )
        self.connectors = Connectors(settings.data_connectors, settings.max_data_file_bytes)
        self.data_spaces = DataSpaces(settings, self.sessions, self.connectors)
        """Hosted data: collections, models' and call trees' spaces, S3 connectors."""
        self.leases = Leases(self.sessions, settings.gateway_lease_seconds)
        """This gateway's lease: builds of gateways that stopped are failed, others' are not."""
        self.registry = Registry(self.sessions, self.leases.instance)
        self.authenticator = Authenticator(self.sessions)
        self.builder = EnvironmentBuilder(
            root=data / "envs",
            python=settings.python,
            index_url=settings.index_url,
            uv_cache_dir=settings.uv_cache_dir,
            timeout=settings.build_timeout,
        )
        self.zygotes = (
            Zygotes(settings.zygote_idle_seconds)
            if settings.zygotes and settings.worker_backend == "local"
            else None
        )
        self.backend: WorkerBackend = _worker_backend(settings, self.zygotes)
        self.version_files: VersionFiles | None = None
        """With an S3 store: versions' files shared through it, fetched here before workers."""
        if isinstance(self.store, S3BlobStore):
            self.version_files = VersionFiles(
                self.store,
                self.sessions,
                self.builder,
                data,
                only_binary=lambda: not self.publisher.policy.allow_sdists,
            )
            self.backend = MaterialisingBackend(self.backend, self.version_files)
        self.pools = PoolManager(
            data,
            self.backend,
            idle_seconds=settings.pool_idle_seconds,
            memory_budget=budget_bytes(settings.worker_memory_budget_mb),
        )
        self.publisher = Publisher(
            settings, self.registry, self.store, self.builder, self.backend, self.sessions
        )
        if self.version_files is not None:
            self.publisher.on_change(self.version_files.share)
        self.sampler = Sampler(self.sessions, self.store, settings.sample_retention_days)
        """Payload samples drawn on the call path, written to the store in the background."""
        self.metrics = Metrics(
            self.pools, self._version_names, self.audit.commit_lag, self.sampler.counts
        )
        """What ``GET /metrics`` serves: requests, model calls, pools and workers."""
        self.counting = self.metrics if settings.metrics_enabled else None
        """What counts each request for ``GET /metrics``; None with ``metrics_enabled`` off."""
        self.shared_buckets = (
            DatabaseBuckets(self.sessions) if settings.shared_rate_limits else None
        )
        """Rate-limit buckets in the registry, shared by its gateways; None: in memory."""
        self.limiter = RateLimiter(
            Limit.of(settings.default_rate_per_second, settings.default_burst),
            buckets=self.shared_buckets,
        )
        self.secrets = ModelSecrets(settings, self.sessions)
        self.call_records = CallRecords(
            self.sessions, settings.feedback_retention_days, self.metrics.observe_feedback
        )
        """What versions that opted in answered, for feedback and comparisons."""
        self.rollups = Rollups(self.sessions, self.call_records)
        self.quotas = Quotas(self.sessions)
        """Budgets of calls or compute per organization or key, checked in memory."""
        self.usage = Usage(self.sessions, self.quotas.count)
        """Calls and compute per day, key and model, for charge-back and the quotas."""
        self.reports = ModelReports(self.sessions, self.registry)
        self.drift_counts = DriftCounts(self.sessions, data)
        """Versions' inputs and outputs per minute, feature and bin, for their drift."""
        self.publisher.on_change(self.drift_counts.profile_at_publish)
        """What model code reports about its calls, per version, minute and name."""
        self.tracing = open_tracing(settings)
        """OpenTelemetry spans of the call path, exported over OTLP; None when off."""
        """Each version's calls per minute, counted here and added to the registry."""
        self.channels = Channels(data)
        """Workers' sockets to this gateway (calls from inside models); serve once attached."""
        self.calls = CallService(
            settings,
            self.registry,
            self.pools,
            self.environment_python,
            self.limiter,
            self.audit,
            secrets=self.secrets,
            channels=self.channels,
            ledger=CallLedger(self.rollups, self.usage, self.quotas),
            records=self.call_records,
            routes=AliasRoutes(self.sessions),
            metrics=self.metrics,
            tracing=self.tracing,
            sampler=self.sampler,
            drift=self.drift_counts,
        )
        self.changes = ChangeFeed(self.sessions, [self.forget_cached])
        """Tells the other gateways on this registry what this one changed, and the reverse."""
        self.on_changed: list[Callable[[], None]] = [self.changes.changed]
        """Told, in the changing thread and before its request is answered, that this gateway
        changed what gateways cache (it has dropped its own caches already)."""
        self.calls.on_forget = self._changed
        self.calls.run_pipeline = Pipelines(self.calls, self.audit, data).run
        self.publisher.on_change(lambda _version_id: self.calls.forget())
        if settings.warm_on_publish:
            self.publisher.hand_off = HandOff(
                self.calls.loop, self._adopt_for_version, self._stop_pool_of_version
            )
            self.publisher.on_change(self.calls.warm)
        self.publisher.smoke_access = self._smoke_access
        self.sources = Sources(data / "git", self.sessions, self.registry)
        self.builds = Builds(
            settings,
            self.sessions,
            self.registry,
            self.sources,
            self.publisher,
            self.leases.instance,
        )
        self.builds.on_change(self.calls.forget)
        if self.version_files is not None:
            self.builds.on_change(self.version_files.share_ready)
        # The services the protocol adapters call: each owns its rules and its sessions.
        self.accounts = Accounts(
            self.sessions,
            self.registry,
            forget_callers=self._forget_callers,
            forget_rights=self.calls.forget,
        )
        self.keyring = Keyring(self.sessions, settings, forget_callers=self._forget_callers)
        self.catalog = Catalog(self.sessions, self.registry, self.store, self.publisher.logs.read)
        self.uploads = Uploads(settings, self.registry, self.publisher)
        self.aliases = Aliases(
            self.sessions,
            self.registry,
            AliasPolicy.of(settings),
            before_move=self.calls.warm_now if settings.warm_on_publish else None,
        )
        self.managed_secrets = ManagedSecrets(self.sessions, self.secrets)
        self.audit_queries = AuditQueries(self.sessions, self.audit)
        self.statistics = Statistics(self.sessions, self.registry)
        self.feedback = Feedback(
            self.sessions,
            self.call_records,
            settings.feedback_retention_days,
            on_scored=self.metrics.observe_feedback,
        )
        self.comparisons = Comparisons(self.sessions, self.registry, self.statistics)
        self.sampling = Sampling(self.sessions, self.registry, self.store, self.sampler)
        self.drift = Drift(self.sessions, self.registry, self.metrics.observe_drift)
        self.alerts = AlertRules(
            self.sessions, self.registry, self.secrets, settings.webhook_allowed_hosts
        )
        """Alert rules on models' signals, managed by the models' managers."""
        self.alert_engine = AlertEngine(
            self.sessions, self.secrets, self.audit, settings, self.leases.instance
        )
        """Evaluates the rules and sends their changes to webhooks (the gateway's loop)."""

    def _smoke_access(self, model_id: int, caller: Caller | None, request_id: str) -> SmokeAccess:
        """What a smoke-tested worker of the model gets, as its served workers do
        (``CallService``): the model's secrets and a channel to this gateway; its example call
        acts for ``caller`` (the publisher, or who pushed or compiled) in a session of its own."""
        with self.sessions() as session:
            model = session.get(Model, model_id)
        if model is None:
            raise ModelNotFound(f"model #{model_id} does not exist")
        env = self.secrets.environment(model_id)
        if caller is None:
            return SmokeAccess(env=env, channel=self.channels.opener(model))
        seconds = self.settings.worker_start_timeout + self.settings.max_call_timeout
        scratch = new_session()
        origin = CallOrigin(caller, model, request_id, scratch, time.monotonic() + seconds)
        return SmokeAccess(env, self.channels.opener(model), origin, scratch)

    def _forget_callers(self) -> None:
        """Cached callers are stale (a key revoked, a role or grant changed): here at once, on
        the other gateways within a second."""
        self.authenticator.forget()
        self._changed()

    def _changed(self) -> None:
        for listener in self.on_changed:
            listener()

    def forget_cached(self) -> None:
        """Drop the cached callers and resolutions: another gateway changed them (thread safe)."""
        self.authenticator.forget()
        self.calls.forget_here()

    def _version_names(self, key: str) -> tuple[str, str]:
        """A pool's key (its version's id) as Prometheus labels: ``owner/name``, semver."""
        version = self.registry.version_by_id(int(key))
        return f"{version.model.owner.name}/{version.model.name}", version.semver

    async def _adopt_for_version(self, version_id: int, pool: Pool) -> bool:
        return await self.pools.adopt(str(version_id), pool)

    def _stop_pool_of_version(self, version_id: int) -> None:
        """Stop version ``version_id``'s pool, if any (thread safe: builds call it)."""
        loop = self.calls.loop()
        if loop is not None and not loop.is_closed():
            asyncio.run_coroutine_threadsafe(self.pools.stop(str(version_id)), loop).result()

    def environment_python(self, environment_hash: str) -> Path:
        return self.settings.resolved_data_dir / "envs" / environment_hash / "bin" / "python"

    def check_ready(self) -> list[str]:
        """Problems that make the platform not ready; empty when ready."""
        problems: list[str] = []
        try:
            ping(self.engine)
        except Exception:
            problems.append("registry database unreachable")
        try:
            self.store.ping()
        except Exception:
            problems.append("artifact store unreachable")
        return problems

    async def aclose(self) -> None:
        await self.pools.stop_all()
        if self.zygotes is not None:
            self.zygotes.close()
        await self.rollups.flush()
        await self.sampler.flush()
        await self.usage.flush()
        await self.reports.flush()
        await self.drift_counts.flush()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)
        self.publisher.shutdown()
        self.builds.shutdown()
        try:
            await asyncio.to_thread(self.leases.release)
        except Exception:  # the lease lapses on its own: other gateways sweep after it
            logger.exception("could not release this gateway's lease")
        await self.audit.aclose()
        self.engine.dispose()


def _worker_backend(settings: Settings, zygotes: Zygotes | None) -> WorkerBackend:
    """Local subprocesses (forked from ``zygotes`` when given), or actors on a Ray cluster;
    Ray is imported only when chosen."""
    if settings.worker_backend == "local":
        return LocalBackend(zygotes=zygotes)
    try:
        from algora.workers.ray_backend import RayBackend  # imports Ray
    except ImportError:
        raise AlgoraError(
            "ALGORA_WORKER_BACKEND is ray, and this server lacks Ray: pip install 'algora[ray]'"
        ) from None
    build = BuildConfig(settings.python, settings.index_url, settings.build_timeout)
    return RayBackend(settings.ray_address, build)
