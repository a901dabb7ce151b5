"""Builds of model source repositories (Algorithmia's ``compile``) and publishing them.

A build takes one commit of a model's repository through every step of a publish (see
:mod:`algora.publishing.publish`: validate, lock, policy, environment, build command, store,
smoke test) and stops short of a version: a succeeded build keeps what it produced (content,
archive and environment hashes, schemas, manifest, policy lineage), so that publishing it
records an immutable, ready version at once, without building again.

A push that moves the default branch starts a build of the new head; ``compile`` builds the
head on demand. A commit whose newest build is in progress or succeeded is not built again
(a compile after a push waits for the push's build, and a retried compile costs nothing): push
a new commit to rebuild. ``publish`` turns the head's newest succeeded build into a version
whose lineage names the commit (``lineage.git.commit``) and the build (``lineage.build_id``);
publishing the same build again answers the same version, so a retried publish never makes
two.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.policy import Action
from algora.auth.principals import Caller
from algora.db.tables import Build, Model, Version, utcnow
from algora.db.views import view_of
from algora.errors import BadRequest, BuildFailed, Conflict, NotFound
from algora.modelfolder.saved import saved_lineage
from algora.publishing.logs import BuildLogs, failure_of
from algora.publishing.pipelines import check_pipeline
from algora.publishing.publish import Prepared, Publisher, built_columns
from algora.registry.service import Registry
from algora.registry.sources import Sources
from algora.registry.specs import Bump
from algora.registry.views import ModelView, VersionView, model_view, version_view
from algora.settings import Settings

__all__ = ["IN_PROGRESS", "BuildView", "Builds"]

logger = logging.getLogger(__name__)

IN_PROGRESS, SUCCEEDED, FAILED = "in-progress", "succeeded", "failed"
INTERRUPTED = "the server stopped while this build ran: compile again"
_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class BuildView:
    """One build; ``version`` is the version it was published as (None: not published)."""

    id: int
    build_id: str
    commit_sha: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    failure_reason: str | None
    manifest: dict[str, Any]
    content_hash: str | None
    environment_hash: str | None
    version: str | None


def _views(model: Model, version: Version) -> tuple[ModelView, VersionView]:
    view = model_view(model)
    return view, version_view(view.full_name, version)


@dataclass(eq=False)
class Builds:
    """Starts, runs, reads and publishes builds; each method opens its own short sessions."""

    settings: Settings
    sessions: sessionmaker[Session]
    registry: Registry
    sources: Sources
    publisher: Publisher
    builder: str | None = None
    """This gateway's lease (see :mod:`algora.registry.leases`), named on what it builds."""
    logs: BuildLogs = field(init=False)
    _executor: ThreadPoolExecutor = field(init=False)
    _running: dict[int, Future[None]] = field(init=False, default_factory=dict)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    """One start-or-reuse and one publish decision at a time."""
    _on_change: list[Callable[[], None]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.logs = BuildLogs(self.settings.resolved_data_dir / "logs" / "source-builds")
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="algora-git-build")

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever a build publishes a version."""
        self._on_change.append(callback)

    # starting ---------------------------------------------------------------------------------
    def compile(self, caller: Caller, owner: str, name: str) -> tuple[int, Future[None] | None]:
        """Build the default branch's head (or reuse its running or succeeded build).

        Returns the build's row id and, when it runs in this process, its future.
        """
        model, branch = self.sources.find(caller, owner, name, "publish")
        head = self.sources.head(owner, name, branch)
        if head is None:
            raise Conflict(
                f"the '{branch}' branch of '{owner}/{name}' has no commits: push one, then compile"
            )
        return self.ensure(model.id, owner, name, head, trigger="compile", by=caller)

    def pushed(
        self, caller: Caller, owner: str, name: str, before: str | None, after: str | None
    ) -> int | None:
        """After a push: build the default branch's new head when it moved; the build's id."""
        if after is None or after == before:
            return None
        with self.sessions() as session:
            model = self.registry.find_model(session, owner, name)
        build_id, _future = self.ensure(model.id, owner, name, after, "push", caller)
        return build_id

    def ensure(
        self, model_id: int, owner: str, name: str, commit: str, trigger: str, by: Caller
    ) -> tuple[int, Future[None] | None]:
        """The running or succeeded build of ``commit``, else a new one (started here), whose
        smoke test's example call acts for ``by``, as a publish's does for its publisher."""
        with self._lock:
            with self.sessions() as session:
                latest = session.scalars(
                    select(Build)
                    .where(Build.model_id == model_id, Build.commit_sha == commit)
                    .order_by(Build.id.desc())
                    .limit(1)
                ).first()
                if latest is not None and latest.status in (IN_PROGRESS, SUCCEEDED):
                    return latest.id, self._running.get(latest.id)
                row = Build(
                    build_id=str(uuid.uuid4()),
                    model_id=model_id,
                    commit_sha=commit,
                    trigger=trigger,
                    status=IN_PROGRESS,
                    started_by=by.principal_id,
                    lineage={},
                    builder=self.builder,
                )
                session.add(row)
                session.commit()
                build = row.id
            log = self.logs.writer(build)
            summary = self.sources.describe(owner, name, commit)
            log(f"==> building {owner}/{name} at commit {commit} ({trigger})")
            if summary:
                log(f"commit: {summary}")
            future = self._executor.submit(self._run, build, model_id, owner, name, commit, by)
            self._running[build] = future
            future.add_done_callback(lambda _f: self._running.pop(build, None))
            return build, future

    # running ----------------------------------------------------------------------------------
    def _run(
        self, build: int, model_id: int, owner: str, name: str, commit: str, by: Caller
    ) -> None:
        log = self.logs.writer(build)
        prepared: Prepared | None = None
        fd, archive_name = tempfile.mkstemp(
            dir=self.publisher.staging_root, prefix="git-", suffix=".tar.gz"
        )
        os.close(fd)
        archive = Path(archive_name)
        try:
            self.sources.archive(owner, name, commit, archive)
            prepared = self.publisher.prepare(archive, owner, name)
            check_pipeline(self.publisher.registry, by, owner, prepared.manifest)
            prepared.log_validated(log)
            built = self.publisher.run_steps(
                prepared,
                log,
                worker_log=self.publisher.worker_logs / f"build-{build}.log",
                model_id=model_id,
                caller=by,
                request_id=f"build-{build}",
            )
            log("==> succeeded")
            self._finish(
                build,
                status=SUCCEEDED,
                manifest=prepared.manifest.model_dump(mode="json"),
                **built_columns(built),
                lineage={**built.policy, **saved_lineage(prepared.manifest)},
            )
        except Exception as exc:
            code, reason = failure_of(exc, log, f"source build #{build}")
            log(f"==> failed ({code}): {reason}")
            self._finish(build, status=FAILED, failure_code=code, failure_reason=reason)
        finally:
            archive.unlink(missing_ok=True)
            if prepared is not None:
                shutil.rmtree(prepared.staging, ignore_errors=True)

    def _finish(self, build: int, **changes: Any) -> None:
        with self.sessions() as session:
            row = session.get(Build, build)
            if row is None:
                return
            for field, value in changes.items():
                setattr(row, field, value)
            row.finished_at = utcnow()
            row.log = self.logs.read(build)[0]
            session.commit()
        self.logs.path(build).unlink(missing_ok=True)

    def fail_interrupted(self, alive: set[str]) -> int:
        """Fail the builds in progress on no ``alive`` gateway (their gateway stopped; their
        logs kept)."""
        with self.sessions() as session:
            stale = session.scalars(
                select(Build).where(
                    Build.status == IN_PROGRESS,
                    or_(Build.builder.is_(None), Build.builder.not_in(alive)),
                )
            ).all()
            for row in stale:
                row.status = FAILED
                row.failure_code = "interrupted"
                row.failure_reason = INTERRUPTED
                row.finished_at = utcnow()
                row.log = self.logs.read(row.id)[0] + f"==> failed (interrupted): {INTERRUPTED}\n"
            session.commit()
            for row in stale:
                self.logs.path(row.id).unlink(missing_ok=True)
            return len(stale)

    async def compile_and_wait(
        self, caller: Caller, owner: str, name: str
    ) -> tuple[ModelView, BuildView]:
        """Build the default branch's head (see :meth:`compile`) and wait for the build to
        finish; the model and the build as it ended."""
        build, future = await asyncio.to_thread(self.compile, caller, owner, name)
        await self._wait(build, future)
        return await asyncio.to_thread(self._compiled, caller, owner, name, build)

    def _compiled(
        self, caller: Caller, owner: str, name: str, build: int
    ) -> tuple[ModelView, BuildView]:
        model, _branch = self.sources.find(caller, owner, name, "read")
        with self.sessions() as session:
            return model_view(model), self._view(session, self._row(build))

    async def _wait(self, build: int, future: Future[None] | None) -> None:
        """Return once the build has finished (or when the build timeout has passed)."""
        deadline = time.monotonic() + self.settings.build_timeout + 60
        if future is not None:
            # shield: a caller who goes away must not cancel a queued build
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.shield(asyncio.wrap_future(future)),
                    timeout=max(deadline - time.monotonic(), 1),
                )
        while True:
            row = await asyncio.to_thread(self._row, build)
            if row.status != IN_PROGRESS or time.monotonic() > deadline:
                return
            await asyncio.sleep(_POLL_SECONDS)

    def _row(self, build: int) -> Build:
        with self.sessions() as session:
            row = session.get(Build, build)
            if row is None:
                raise NotFound(f"build #{build} does not exist")
            return row

    # reading ----------------------------------------------------------------------------------
    def of_model(
        self, caller: Caller, owner: str, name: str, after: str | None = None
    ) -> list[BuildView]:
        """The model's builds, newest first (the caller must be able to read the model);
        ``after`` (a build id) keeps the builds older than that one."""
        model, _branch = self.sources.find(caller, owner, name, "read")
        with self.sessions() as session:
            rows = list(
                session.scalars(
                    select(Build).where(Build.model_id == model.id).order_by(Build.id.desc())
                )
            )
            if after:
                ids = [b.build_id for b in rows]
                if after not in ids:
                    raise BadRequest(f"marker '{after}' is not a build of '{owner}/{name}'")
                rows = rows[ids.index(after) + 1 :]
            return [self._view(session, row) for row in rows]

    def get(self, caller: Caller, owner: str, name: str, build_id: str) -> BuildView:
        """One build of the model, once the caller may read the model."""
        with self.sessions() as session:
            return self._view(session, self._find(session, caller, owner, name, build_id, "read"))

    def log(self, caller: Caller, owner: str, name: str, build_id: str) -> str:
        """The build's log: the live file while it runs, the stored text once it has finished.
        A log shows what the build ran and the model's tracebacks: it is read like the source,
        by those who may publish the model."""
        with self.sessions() as session:
            build = self._find(session, caller, owner, name, build_id, "publish")
            if build.status == IN_PROGRESS:
                text, _offset = self.logs.read(build.id)
                if text:
                    return text
                session.refresh(build)
            return build.log

    def _find(
        self, session: Session, caller: Caller, owner: str, name: str, build_id: str, action: Action
    ) -> Build:
        model, _branch = self.sources.find(caller, owner, name, action)
        row = session.scalars(
            select(Build).where(Build.model_id == model.id, Build.build_id == build_id)
        ).first()
        if row is None:
            raise NotFound(f"'{owner}/{name}' has no build '{build_id}'")
        return row

    def _view(self, session: Session, row: Build) -> BuildView:
        version = session.get(Version, row.version_id) if row.version_id is not None else None
        semver = version.semver if version is not None else None
        return view_of(BuildView, row, manifest=dict(row.manifest or {}), version=semver)

    # publishing -------------------------------------------------------------------------------
    def publish(
        self,
        caller: Caller,
        owner: str,
        name: str,
        *,
        bump: Bump,
        release_notes: str | None,
        sample_input: str | None,
    ) -> tuple[ModelView, VersionView, bool]:
        """The default branch head's newest succeeded build as a ready version; and whether
        the version is new (False: that build was published already, as that version)."""
        model, branch = self.sources.find(caller, owner, name, "publish")
        head = self.sources.head(owner, name, branch)
        if head is None:
            raise Conflict(f"the '{branch}' branch of '{owner}/{name}' has no commits to publish")
        with self._lock:
            build = self._publishable(model, branch, head)
            if build.version_id is not None:
                return *_views(model, self.registry.version_by_id(build.version_id)), False
            lineage: dict[str, Any] = {
                "git": {"commit": head, "dirty": False, "branch": branch},
                "build_id": build.build_id,
                **build.lineage,
            }
            version = self.registry.create_version(
                model.id,
                bump=bump,
                exact=None,
                manifest=dict(build.manifest or {}),
                lineage=lineage,
                published_by=caller.principal_id,
            )
            with self.sessions() as session:
                claimed = session.execute(
                    update(Build)
                    .where(Build.id == build.id, Build.version_id.is_(None))
                    .values(version_id=version.id)
                )
                session.commit()
            if getattr(claimed, "rowcount", 1) != 1:  # another gateway published it first
                self.registry.update_version(
                    version.id,
                    status="failed",
                    failure_code="duplicate",
                    failure_reason=f"build {build.build_id} was published by another request",
                )
                winner = self._row(build.id).version_id
                assert winner is not None  # the claim failed because it is set
                return *_views(model, self.registry.version_by_id(winner)), False
            ready = self.registry.mark_ready(
                version.id,
                **built_columns(build),
                build_log=build.log,
                release_notes=release_notes,
                sample_input=sample_input,
            )
        for callback in self._on_change:
            callback()
        return *_views(model, ready), True

    def _publishable(self, model: Model, branch: str, head: str) -> Build:
        with self.sessions() as session:
            rows = session.scalars(
                select(Build)
                .where(Build.model_id == model.id, Build.commit_sha == head)
                .order_by(Build.id.desc())
            ).all()
        for row in rows:
            if row.status == SUCCEEDED:
                return row
        full = f"'{model.owner.name}/{model.name}'"
        if not rows:
            raise Conflict(
                f"commit {head[:12]} (the head of {full}'s '{branch}' branch) has not been "
                "built: compile it, then publish"
            )
        latest = rows[0]
        if latest.status == IN_PROGRESS:
            raise Conflict(
                f"build {latest.build_id} of commit {head[:12]} is still in progress: publish "
                "once get_build says it succeeded"
            )
        raise BuildFailed(
            f"build {latest.build_id} of commit {head[:12]} failed "
            f"({latest.failure_reason}): read its log (get_build_logs), fix the code and push",
            details={"build_id": latest.build_id},
        )

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
