"""The publish path: archive -> manifest -> lock -> environment -> build -> store -> smoke test.

``accept`` does the cheap checks while the publisher waits, so a bad archive or manifest is a
4xx at once; the slow steps run in the background and report into the version's build log.
Any failure leaves the version ``failed`` with its reason and log, and every other version
serving.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from algora.auth.principals import Caller
from algora.db.tables import Environment as EnvironmentRow
from algora.environments.builder import EnvironmentBuilder
from algora.environments.requirements import parse_requirements
from algora.environments.spec import interpreter_version
from algora.errors import AlgoraError, InvalidManifest
from algora.registry.archive import safe_extract, tree_hash
from algora.registry.manifest import Manifest, load_manifest
from algora.registry.service import Registry
from algora.registry.specs import Bump
from algora.settings import Settings
from algora.store.base import BlobStore
from algora.workers.backend import WorkerBackend
from algora.workers.smoke import smoke_test
from algora.workers.spec import WorkerSpec

__all__ = ["STEPS", "BuildLogs", "Publisher"]

logger = logging.getLogger(__name__)

STEPS = (
    "validate",
    "lock dependencies",
    "build environment",
    "run build command",
    "store artifacts",
    "smoke test",
)


class BuildLogs:
    """One append-only log file per version while it builds."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()

    def path(self, version_id: int) -> Path:
        return self.root / f"{version_id}.log"

    def writer(self, version_id: int) -> Callable[[str], None]:
        path = self.path(version_id)

        def write(line: str) -> None:
            with self._lock, path.open("a", encoding="utf-8") as handle:
                handle.write(line.rstrip("\n") + "\n")

        return write

    def read(self, version_id: int, offset: int = 0) -> tuple[str, int]:
        path = self.path(version_id)
        if not path.exists():
            return "", offset
        with path.open("rb") as handle:
            handle.seek(max(offset, 0))
            data = handle.read()
        return data.decode("utf-8", errors="replace"), max(offset, 0) + len(data)


@dataclass
class _Job:
    version_id: int
    staging: Path
    manifest: Manifest
    requirements: list[str]
    archive: Path


class Publisher:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        store: BlobStore,
        builder: EnvironmentBuilder,
        backend: WorkerBackend,
        sessions: Any,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.builder = builder
        self.backend = backend
        self.sessions = sessions
        data = settings.resolved_data_dir
        self.staging_root = data / "staging"
        self.sources_root = data / "sources"
        self.worker_logs = data / "logs" / "workers"
        self.logs = BuildLogs(data / "logs" / "builds")
        for path in (self.staging_root, self.sources_root, self.worker_logs):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="algora-build")
        self._on_ready: list[Callable[[int], None]] = []

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
            manifest = load_manifest(source)
            if manifest.model.name != name:
                raise InvalidManifest(
                    f"{'algora.toml'} names the model '{manifest.model.name}' but it is being "
                    f"published as '{owner}/{name}': make the two agree"
                )
            requirements = self._requirements(source, manifest)
            model_id = self.registry.model_for_publish(caller, owner, name, manifest)
            version = self.registry.create_version(
                model_id,
                bump=bump,
                exact=exact,
                manifest=manifest.model_dump(mode="json"),
                lineage=dict(lineage or {}),
                published_by=caller.principal_id,
            )
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        kept_archive = staging / "archive"
        shutil.move(archive, kept_archive)
        job = _Job(version.id, staging, manifest, requirements, kept_archive)
        log = self.logs.writer(version.id)
        log(f"==> publishing {owner}/{name} {version.semver}")
        log(f"==> step 1/{len(STEPS)}: validate: archive and {'algora.toml'} are valid")
        future = self._executor.submit(self._build, job)
        return version.id, future

    def _requirements(self, source: Path, manifest: Manifest) -> list[str]:
        path = (source / manifest.environment.requirements).resolve()
        if not path.is_relative_to(source.resolve()):
            raise InvalidManifest("environment.requirements must name a file inside the model")
        if not path.is_file():
            if manifest.environment.requirements == "requirements.txt":
                return []
            raise InvalidManifest(
                f"environment.requirements names '{manifest.environment.requirements}', "
                "which is not in the model folder"
            )
        return parse_requirements(path.read_text(encoding="utf-8"))

    def _build(self, job: _Job) -> None:
        log = self.logs.writer(job.version_id)
        total = len(STEPS)

        def step(number: int, text: str) -> None:
            log(f"==> step {number}/{total}: {STEPS[number - 1]}: {text}")

        try:
            source = job.staging / "src"
            python = self.settings.python
            step(2, f"{len(job.requirements)} requirement(s) with uv")
            lock = self.builder.lock(job.requirements, log)
            step(3, "creating or reusing the environment")
            env = self.builder.ensure(lock, log)
            self._record_environment(env.hash, interpreter_version(python), lock)
            log(("reused" if env.reused else "built") + f" environment {env.hash[:12]}")
            if job.manifest.build.command:
                step(4, " ".join(job.manifest.build.command))
                self.builder.run_in_environment(
                    env,
                    list(job.manifest.build.command),
                    source,
                    log,
                    self.settings.build_timeout,
                )
            else:
                step(4, "no build command")
            step(5, "hashing code and artifacts")
            content_hash = hashlib.sha256(f"{tree_hash(source)}\n{env.hash}".encode()).hexdigest()
            archive_hash = self.store.put_file(job.archive)
            final = self.sources_root / content_hash
            if final.exists():
                shutil.rmtree(source)
            else:
                source.rename(final)
            log(f"content hash {content_hash}")
            step(6, "loading the model and calling its example input")
            spec = WorkerSpec(
                python=Path(env.python),
                source_dir=final,
                entrypoint=job.manifest.model.entrypoint,
                log_path=self.worker_logs / f"{job.version_id}.log",
                replicas=1,
                start_timeout=self.settings.worker_start_timeout,
            )
            example = job.manifest.example.as_call()
            info, result = asyncio.run(
                smoke_test(
                    spec,
                    self.backend,
                    self.settings.resolved_data_dir,
                    example,
                    min(job.manifest.serving.timeout, self.settings.max_call_timeout),
                )
            )
            if result is not None:
                preview = result.payload[:200].decode("utf-8", errors="replace")
                log(f"example answered ({result.content_type}): {preview}")
            self.registry.mark_ready(
                job.version_id,
                content_hash=content_hash,
                archive_hash=archive_hash,
                environment_hash=env.hash,
                input_schema=info.input_schema,
                output_schema=info.output_schema,
                build_log=self.logs.read(job.version_id)[0] + "==> ready\n",
            )
            log("==> ready")
        except AlgoraError as exc:
            self._fail(job.version_id, exc.code, exc.message, log)
        except Exception as exc:
            logger.exception("build of version %s failed unexpectedly", job.version_id)
            self._fail(job.version_id, "internal_error", f"{type(exc).__name__}: {exc}", log)
        finally:
            shutil.rmtree(job.staging, ignore_errors=True)
            for callback in self._on_ready:
                callback(job.version_id)

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
