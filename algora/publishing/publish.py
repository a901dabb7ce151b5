"""The publish path: archive, manifest, lock, policy, environment, build, store, smoke test.

``accept`` does the cheap checks while the publisher waits, so a bad archive or manifest is a
4xx at once; the slow steps run in the background and report into the version's build log.
Any failure leaves the version ``failed`` with its reason and log, and every other version
serving.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from algora.auth.principals import Caller
from algora.db.tables import Environment as EnvironmentRow
from algora.environments.builder import Environment, EnvironmentBuilder, Log
from algora.environments.policy import Policy, load_policy
from algora.environments.requirements import parse_requirements
from algora.environments.spec import environment_hash, interpreter_version
from algora.environments.vulnscan import INSTALL_HINT as VULNSCAN_HINT
from algora.environments.vulnscan import Auditor
from algora.errors import InvalidManifest
from algora.modelfolder.layouts import find_manifest
from algora.modelfolder.manifest import Manifest
from algora.modelfolder.packing import tree_hash
from algora.modelfolder.saved import requirements_for, saved_lineage
from algora.publishing.archive import move_into_place, safe_extract
from algora.publishing.logs import BuildLogs, failure_of
from algora.publishing.node_steps import Record, Step, node_requirements, node_steps
from algora.publishing.pipelines import check_pipeline, stored_pipeline
from algora.publishing.smoke import HandOff, smoke_test
from algora.registry.drift_profile import reference_in
from algora.registry.service import Registry
from algora.registry.serving import with_secrets, worker_spec
from algora.registry.specs import Bump
from algora.settings import Settings
from algora.store.base import BlobStore
from algora.store.model_data import drop_session
from algora.workers.backend import WorkerBackend
from algora.workers.channel import ChannelOpener
from algora.workers.sandbox import bwrap_command, use_sandbox

__all__ = [
    "BUILT_COLUMNS",
    "STEPS",
    "Built",
    "Prepared",
    "Publisher",
    "SmokeAccess",
    "SmokeAccessFor",
    "built_columns",
]

logger = logging.getLogger(__name__)

STEPS = (
    "validate", "lock dependencies", "check policy", "build environment", "run build command",
    "store artifacts", "smoke test",
)  # fmt: skip


@dataclass
class Prepared:
    """A model's source, unpacked and validated: what the slow steps start from."""

    staging: Path
    """A private folder of its own: ``src`` (the unpacked source) and ``archive``."""
    manifest: Manifest
    requirements: list[str]
    archive: Path
    origin: str = "algora.toml"
    """The file the manifest came from: ``algora.toml``, or Algorithmia's ``algorithmia.conf``."""
    notes: tuple[str, ...] = ()
    """Lines for the build log about a manifest derived from Algorithmia's layout."""

    def log_validated(self, log: Callable[[str], None]) -> None:
        """Write step 1's line, and the notes on the manifest, to a build log."""
        log(f"==> step 1/{len(STEPS)}: validate: archive and {self.origin} are valid")
        for note in self.notes:
            log(note)

    @property
    def source(self) -> Path:
        return self.staging / "src"


@dataclass(frozen=True)
class Built:
    """What the slow steps produced: everything a ready version records but its number."""

    content_hash: str
    archive_hash: str
    environment_hash: str | None
    """None for a pipeline, which has no environment."""
    input_schema: dict[str, Any] | None
    output_schema: dict[str, Any] | None
    policy: dict[str, Any]
    """The lineage entries of the policy check: ``sbom``, ``vulnerabilities``,
    ``policy_warnings``."""


BUILT_COLUMNS = (
    "content_hash",
    "archive_hash",
    "environment_hash",
    "input_schema",
    "output_schema",
)
"""What a ready version and a succeeded source build both record of what was built."""


def built_columns(source: object) -> dict[str, Any]:
    """``source``'s values (a :class:`Built`, or a build row) of :data:`BUILT_COLUMNS`."""
    return {name: getattr(source, name) for name in BUILT_COLUMNS}


@dataclass
class _Job:
    version_id: int
    model_id: int
    prepared: Prepared
    caller: Caller


@dataclass(frozen=True)
class SmokeAccess:
    """What a smoke-tested worker gets from the platform, as the model's served workers do."""

    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    """The model's secrets, as environment variables (never logged)."""
    channel: ChannelOpener | None = field(default=None, compare=False)
    """Opens the worker's channel to the gateway: its model calls models and reads data."""
    origin: object | None = field(default=None, repr=False, compare=False)
    """Whom the example call acts for (``CallRequest.origin``)."""
    session: str | None = None
    """The scratch space (``data://.session``) the example call opens: removed once the smoke
    test ends."""


SmokeAccessFor = Callable[[int, Caller | None, str], SmokeAccess]
"""For a model, who publishes or builds it, and the example call's request id: what the
smoke-tested worker gets (see ``Publisher.smoke_access``). Blocking: it reads the registry."""


@dataclass(eq=False)
class Publisher:
    settings: Settings
    registry: Registry
    store: BlobStore
    builder: EnvironmentBuilder
    backend: WorkerBackend
    sessions: Any
    policy: Policy = field(init=False)
    auditor: Auditor = field(init=False)
    staging_root: Path = field(init=False)
    sources_root: Path = field(init=False)
    worker_logs: Path = field(init=False)
    logs: BuildLogs = field(init=False)
    smoke_access: SmokeAccessFor | None = field(init=False, default=None)
    """Set by the platform: the smoke-tested model gets its secrets and reaches the gateway
    as served models do (``algora.gateway.channels``), its example call acting for the
    publisher. Unset, it gets neither."""
    hand_off: HandOff | None = field(init=False, default=None)
    """Set by the platform: a published version's smoke-tested worker goes on serving it."""
    _executor: ThreadPoolExecutor = field(init=False)
    _on_ready: list[Callable[[int], None]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        settings = self.settings
        # A policy file that is unreadable, invalid or names another index stops the platform
        # here, at start, rather than letting versions publish under a policy nobody meant.
        self.policy = load_policy(settings.policy_file, settings.index_url)
        data = settings.resolved_data_dir
        self.auditor = Auditor(
            data / "audit",
            cache_seconds=self.policy.vulnerabilities.cache_seconds,
            timeout=min(settings.build_timeout, 600),
        )
        self.staging_root = data / "staging"
        self.sources_root = data / "sources"
        self.worker_logs = data / "logs" / "workers"
        self.logs = BuildLogs(data / "logs" / "builds")
        for path in (self.staging_root, self.sources_root, self.worker_logs):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Builds do not survive a restart (their versions are marked failed at startup).
        for leftover in self.staging_root.iterdir():
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="algora-build")

    def on_change(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(version_id)`` whenever a build finishes, ready or failed."""
        self._on_ready.append(callback)

    def accept(
        self,
        caller: Caller,
        owner: str,
        name: str,
        archive: Path,
        *,
        bump: Bump | None = None,
        exact: str | None = None,
        lineage: dict[str, Any] | None = None,
    ) -> tuple[int, Future[None]]:
        """Validate the archive and manifest, reserve the version, start the build."""
        prepared = self.prepare(archive, owner, name)
        try:
            manifest = prepared.manifest
            check_pipeline(self.registry, caller, owner, manifest)  # steps: with its rights
            model_id = self.registry.model_for_publish(caller, owner, name, manifest)
            version = self.registry.create_version(
                model_id,
                bump=bump,
                exact=exact,
                manifest=manifest.model_dump(mode="json"),
                lineage={**(lineage or {}), **saved_lineage(manifest)},
                published_by=caller.principal_id,
            )
        except BaseException:
            shutil.rmtree(prepared.staging, ignore_errors=True)
            raise
        job = _Job(version.id, model_id, prepared, caller)
        log = self.logs.writer(version.id)
        log(f"==> publishing {owner}/{name} {version.semver}")
        prepared.log_validated(log)
        future = self._executor.submit(self._build, job)
        return version.id, future

    def prepare(self, archive: Path, owner: str, name: str) -> Prepared:
        """Unpack ``archive`` (moved into a private staging folder) and validate its manifest
        and requirements for ``owner/name``; the caller removes ``staging`` when done."""
        staging = self.staging_root / uuid.uuid4().hex
        staging.mkdir(mode=0o700)
        try:
            source = staging / "src"
            safe_extract(
                archive,
                source,
                max_bytes=self.settings.max_archive_bytes,
                max_members=self.settings.max_archive_members,
            )
            found = find_manifest(source, name=name)
            manifest = found.manifest
            if manifest.model.name != name:
                raise InvalidManifest(
                    f"{'algora.toml'} names the model '{manifest.model.name}' but it is being "
                    f"published as '{owner}/{name}': make the two agree"
                )
            requirements = self._requirements(source, manifest)
            reference_in(source, manifest.monitoring.drift_reference)  # checked, made later
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        kept_archive = staging / "archive"
        shutil.move(archive, kept_archive)
        return Prepared(staging, manifest, requirements, kept_archive, found.origin, found.notes)

    def _requirements(self, source: Path, manifest: Manifest) -> list[str]:
        if manifest.model.runtime == "node":  # npm's: package.json, checked while they wait
            return node_requirements(source)
        path = (source / manifest.environment.requirements).resolve()
        if not path.is_relative_to(source.resolve()):
            raise InvalidManifest("environment.requirements must name a file inside the model")
        if not path.is_file():
            if manifest.environment.requirements == "requirements.txt":
                return requirements_for(manifest, source)  # a saved model's format's; or none
            raise InvalidManifest(
                f"environment.requirements names '{manifest.environment.requirements}', "
                "which is not in the model folder"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InvalidManifest(
                f"'{manifest.environment.requirements}' is not UTF-8 text: save it as UTF-8"
            ) from None
        return parse_requirements(text)

    def _build(self, job: _Job) -> None:
        log = self.logs.writer(job.version_id)

        def record_policy(entries: dict[str, Any]) -> None:
            lineage = dict(self.registry.version_by_id(job.version_id).lineage)
            lineage.update(entries)
            self.registry.update_version(job.version_id, lineage=lineage)

        try:
            built = self.run_steps(
                job.prepared,
                log,
                worker_log=self.worker_logs / f"{job.version_id}.log",
                model_id=job.model_id,
                caller=job.caller,
                request_id=f"smoke-{job.version_id}",
                record_policy=record_policy,
                keep_for=job.version_id,
            )
            self.registry.mark_ready(
                job.version_id,
                **built_columns(built),
                build_log=self.logs.read(job.version_id)[0] + "==> ready\n",
            )
            log("==> ready")
        except Exception as exc:
            code, reason = failure_of(exc, log, f"version #{job.version_id}")
            if self.hand_off is not None:
                self.hand_off.release(job.version_id)
            self._fail(job.version_id, code, reason, log)
        finally:
            shutil.rmtree(job.prepared.staging, ignore_errors=True)
            for callback in self._on_ready:
                callback(job.version_id)

    def run_steps(
        self,
        prepared: Prepared,
        log: Callable[[str], None],
        *,
        worker_log: Path,
        model_id: int,
        caller: Caller | None,
        request_id: str,
        record_policy: Callable[[dict[str, Any]], None] | None = None,
        keep_for: int | None = None,
    ) -> Built:
        """Steps 2 to 7 of :data:`STEPS` on a prepared source of model ``model_id``, reporting
        into ``log``.

        The smoke test's worker starts as the model's served workers do (see
        :attr:`smoke_access`): with the model's secrets and a channel to the gateway, its example
        call ``request_id`` acting for ``caller``. ``record_policy`` receives the policy check's
        lineage entries as soon as it passes. With ``keep_for`` (a version's id) and a
        :attr:`hand_off`, the smoke-tested worker goes on serving that version. Raises the
        step's error; the caller removes ``prepared.staging``.
        """
        total = len(STEPS)

        def step(number: int, text: str) -> None:
            log(f"==> step {number}/{total}: {STEPS[number - 1]}: {text}")

        source = prepared.source
        manifest = prepared.manifest
        if manifest.pipeline is not None:  # its steps are models: no environment, no worker
            log(f"a pipeline of {len(manifest.pipeline.steps)} steps: nothing to build or load")
            return Built(**stored_pipeline(source, prepared.archive, self.store, self.sources_root))
        if manifest.model.runtime == "node":  # npm in place of uv
            env, policy = node_steps(
                self.settings, (self.policy, self.store, self.auditor), source, step, log,
                self._record_environment, record_policy,
            )  # fmt: skip
        else:
            env, policy = self._python_environment(prepared, step, log, record_policy)
        log(("reused" if env.reused else "built") + f" environment {env.hash[:12]}")
        if manifest.build.command:
            step(5, " ".join(manifest.build.command))
            self.builder.run_in_environment(
                env,
                list(manifest.build.command),
                source,
                log,
                self.settings.build_timeout,
                wrap=self._build_sandbox(manifest, env.python, source, worker_log),
            )
        else:
            step(5, "no build command")
        step(6, "hashing code and artifacts")
        content_hash = hashlib.sha256(f"{tree_hash(source)}\n{env.hash}".encode()).hexdigest()
        archive_hash = self.store.put_file(prepared.archive)
        final = self.sources_root / content_hash
        move_into_place(source, final)
        log(f"content hash {content_hash}")
        step(7, "loading the model and calling its example input")
        spec = worker_spec(
            self.settings,
            manifest,
            python=Path(env.python),
            source_dir=final,
            log_path=worker_log,
            replicas=1,
        )
        example = manifest.example.as_call()
        access = SmokeAccess()
        if self.smoke_access is not None:
            access = self.smoke_access(model_id, caller, request_id)
        spec = replace(with_secrets(spec, access.env), channel=access.channel)
        data_dir = self.settings.resolved_data_dir
        hand_off = self.hand_off
        keep = None
        if hand_off is not None and keep_for is not None:
            keep = functools.partial(hand_off.adopt, keep_for)
        timeout = min(manifest.serving.timeout, self.settings.max_call_timeout)
        test = smoke_test(spec, self.backend, data_dir, example, timeout, access.origin, keep)
        try:
            info, result = asyncio.run(test) if hand_off is None else hand_off.run(test)
        finally:
            if access.session is not None:
                drop_session(data_dir, access.session)
        if result is not None:
            preview = result.payload[:200].decode("utf-8", errors="replace")
            log(f"example answered ({result.content_type}): {preview}")
        return Built(
            content_hash=content_hash,
            archive_hash=archive_hash,
            environment_hash=env.hash,
            input_schema=info.input_schema,
            output_schema=info.output_schema,
            policy=policy,
        )

    def _python_environment(
        self, prepared: Prepared, step: Step, log: Log, record_policy: Record | None
    ) -> tuple[Environment, dict[str, Any]]:
        only_binary = not self.policy.allow_sdists
        step(2, f"{len(prepared.requirements)} requirement(s) with uv")
        lock = self.builder.lock(prepared.requirements, log, only_binary=only_binary)
        step(3, "package rules and known vulnerabilities")
        policy = self._check_policy(lock, log)
        if record_policy is not None:
            record_policy(policy)
        step(4, "creating or reusing the environment")
        env = self.builder.ensure(lock, log, only_binary=only_binary)
        self._record_environment(env.hash, interpreter_version(self.settings.python), lock)
        return env, policy

    def _check_policy(self, lock: str, log: Callable[[str], None]) -> dict[str, Any]:
        """Enforce the dependency policy on ``lock``; the SBOM and warnings as lineage entries.

        Raises :class:`~algora.errors.PolicyViolation` naming each package and rule it broke.
        """
        started = time.monotonic()
        python_version = interpreter_version(self.settings.python)
        scan = self.auditor.scan(lock, log)
        report = self.policy.evaluate(lock, scan)
        for warning in report.warnings:
            log(f"warning: {warning}")
        report.raise_for_violations()
        env_hash = environment_hash(python_version, lock)
        sbom_file = self.auditor.sbom(lock, env_hash, python_version)
        sbom = self.store.put_file(sbom_file) if sbom_file is not None else None
        made = f"SBOM {sbom[:12]}" if sbom else f"no SBOM ({VULNSCAN_HINT})"
        log(f"policy passed in {time.monotonic() - started:.2f}s; {made}")
        return {
            "sbom": sbom,
            "vulnerabilities": report.vulnerabilities,
            "policy_warnings": report.warnings,
        }

    def _build_sandbox(
        self, manifest: Manifest, python: Path, source: Path, worker_log: Path
    ) -> Callable[[list[str]], list[str]] | None:
        """Run the build command in the same sandbox as the model's workers, source writable."""
        if not use_sandbox(self.settings.sandbox):
            return None
        spec = worker_spec(
            self.settings,
            manifest,
            python=Path(python),
            source_dir=source,
            log_path=worker_log,
            replicas=1,
        )
        data_dir = self.settings.resolved_data_dir
        return lambda command: bwrap_command(
            command, spec, data_dir, source, None, writable_source=True
        )

    def _fail(self, version_id: int, code: str, message: str, log: Callable[[str], None]) -> None:
        log(f"==> failed ({code}): {message}")
        self.registry.update_version(
            version_id,
            status="failed",
            failure_code=code,
            failure_reason=message,
            build_log=self.logs.read(version_id)[0],
        )

    def _record_environment(self, env_hash: str, python_version: str, lock: str) -> None:
        with self.sessions() as session:
            if session.get(EnvironmentRow, env_hash) is None:
                session.add(EnvironmentRow(hash=env_hash, python_version=python_version, lock=lock))
                session.commit()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
