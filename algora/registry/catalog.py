"""The catalog: models and versions as every protocol adapter reads and changes them.

One service for the native API and Algorithmia's, so that what a model's latest callable
version is, who may see a model and which version a name picks cannot drift between them.
Every method takes the caller first, checks its right on the model (a model the caller may not
read does not exist for it), and returns frozen views (:mod:`algora.registry.views`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.policy import Action
from algora.auth.principals import Caller
from algora.db.tables import Model, Version
from algora.errors import BadRequest, NotFound, VersionNotFound
from algora.registry.service import Registry
from algora.registry.specs import parse_spec
from algora.registry.views import ModelView, VersionView, model_view, version_view
from algora.store.base import BlobStore

__all__ = ["BuildLog", "Catalog", "LiveLog", "Visibility"]

Visibility = Literal["private", "organization", "public"]
LiveLog = Callable[[int, int], tuple[str, int]]
"""Reads a building version's live log from an offset: (text, next offset)."""


@dataclass(frozen=True)
class BuildLog:
    """A page of a version's build log: its text from the offset asked for, and the next."""

    status: str
    text: str
    offset: int

    @property
    def done(self) -> bool:
        return self.status != "building"


@dataclass(frozen=True, eq=False)
class Catalog:
    """Reads and changes models and versions; each method opens its own short session."""

    sessions: sessionmaker[Session]
    registry: Registry
    store: BlobStore
    live_log: LiveLog

    # models -------------------------------------------------------------------------------
    def list_models(self, caller: Caller) -> list[ModelView]:
        """Every model the caller may read, oldest first."""
        return [model_view(m) for m in self.registry.list_models(caller)]

    def get_model(self, caller: Caller, owner: str, name: str) -> ModelView:
        return model_view(self.registry.get_model(caller, owner, name))

    def require(self, caller: Caller, owner: str, name: str, action: Action) -> ModelView:
        """The model, once the caller may ``action`` it (before a request body is read)."""
        with self.sessions() as session:
            return model_view(self._model(session, caller, owner, name, action))

    def update_model(
        self,
        caller: Caller,
        owner: str,
        name: str,
        *,
        description: str | None = None,
        deprecated: bool | None = None,
        visibility: Visibility | None = None,
    ) -> ModelView:
        """Change what is given (None: leave it); needs the manage right."""
        row = self.registry.update_model(
            caller,
            owner,
            name,
            description=description,
            deprecated=deprecated,
            visibility=visibility,
        )
        return model_view(row)

    def describe(
        self, caller: Caller, owner: str, name: str
    ) -> tuple[ModelView, VersionView | None]:
        """The model and the version ``latest`` names: its highest callable one (if any)."""
        model = self.get_model(caller, owner, name)
        latest = next((v for v in self.list_versions(caller, owner, name) if v.callable), None)
        return model, latest

    # versions -----------------------------------------------------------------------------
    def list_versions(
        self,
        caller: Caller,
        owner: str,
        name: str,
        *,
        ready: bool | None = None,
        is_callable: bool | None = None,
        below: tuple[int, int, int] | None = None,
    ) -> list[VersionView]:
        """The model's versions, highest first; ``ready`` and ``is_callable`` keep those that are
        (True) or are not (False); ``below`` keeps versions lower than that one."""
        with self.sessions() as session:
            model = self._model(session, caller, owner, name, "read")
            views = [version_view(_full_name(model), v) for v in self._versions(session, model)]
        if ready is not None:
            views = [v for v in views if (v.status == "ready") == ready]
        if is_callable is not None:
            views = [v for v in views if v.callable == is_callable]
        if below is not None:
            views = [v for v in views if (v.major, v.minor, v.patch) < below]
        return views

    def get_version(self, caller: Caller, owner: str, name: str, semver: str) -> VersionView:
        row = self.registry.get_version(caller, owner, name, semver)
        return version_view(_full_name(row.model), row)

    def find_version(self, caller: Caller, owner: str, name: str, text: str) -> VersionView:
        """The version named by its content hash (a prefix of 12 or more hex digits) or its
        exact ``MAJOR.MINOR.PATCH``, whatever its status."""
        spec = parse_spec(text)
        versions = self.list_versions(caller, owner, name)
        if spec.kind == "hash":
            prefix = spec.hash_prefix or ""
            found = [v for v in versions if (v.content_hash or "").startswith(prefix)]
        elif spec.kind == "exact":
            found = [v for v in versions if v.semver == text.strip()]
        else:
            raise BadRequest(
                f"name one version: its content hash or MAJOR.MINOR.PATCH, not '{text}'"
            )
        if not found:
            raise VersionNotFound(f"'{owner}/{name}' has no version '{text}'")
        return found[0]

    def deprecate_version(
        self, caller: Caller, owner: str, name: str, semver: str, deprecated: bool
    ) -> VersionView:
        row = self.registry.deprecate_version(caller, owner, name, semver, deprecated)
        return version_view(_full_name(row.model), row)

    # what a version was built from --------------------------------------------------------
    def lock(self, caller: Caller, owner: str, name: str, semver: str) -> str:
        """The locked requirements its environment was built from."""
        with self.sessions() as session:
            row = self._version(session, caller, owner, name, semver)
            if row.environment is None:
                raise NotFound(f"version {row.semver} has no environment ({row.status})")
            return row.environment.lock

    def lineage(self, caller: Caller, owner: str, name: str, semver: str) -> dict[str, Any]:
        """Its hashes and where it came from (git, data, build, policy)."""
        version = self.get_version(caller, owner, name, semver)
        return {
            "content_hash": version.content_hash,
            "archive_hash": version.archive_hash,
            "environment_hash": version.environment_hash,
            **version.lineage,
        }

    def sbom(self, caller: Caller, owner: str, name: str, semver: str) -> bytes:
        """The CycloneDX JSON SBOM of its environment."""
        version = self.get_version(caller, owner, name, semver)
        digest = version.lineage.get("sbom")
        if not isinstance(digest, str):
            raise NotFound(f"version {version.semver} has no SBOM ({version.status})")
        with self.store.open(digest) as blob:
            return blob.read()

    def build_log(
        self, caller: Caller, owner: str, name: str, semver: str, offset: int = 0
    ) -> BuildLog:
        """Its build log from ``offset``: live while it builds, then the stored log."""
        with self.sessions() as session:
            row = self._version(session, caller, owner, name, semver)
            status, stored = row.status, row.build_log
            text, new_offset = self.live_log(row.id, offset)
        if not text and status != "building" and offset == 0:
            text, new_offset = stored, len(stored.encode())
        return BuildLog(status, text, new_offset)

    # helpers ------------------------------------------------------------------------------
    def _model(
        self, session: Session, caller: Caller, owner: str, name: str, action: Action
    ) -> Model:
        return self.registry.require_model(session, caller, owner, name, action)

    def _version(
        self, session: Session, caller: Caller, owner: str, name: str, semver: str
    ) -> Version:
        wanted = self.registry.get_version(caller, owner, name, semver)
        row = session.get(Version, wanted.id)
        if row is None:  # deleted between the two reads
            raise VersionNotFound(f"'{owner}/{name}' has no version {semver}")
        return row

    def _versions(self, session: Session, model: Model) -> list[Version]:
        """Highest first."""
        return list(
            session.scalars(
                select(Version)
                .where(Version.model_id == model.id)
                .order_by(Version.major.desc(), Version.minor.desc(), Version.patch.desc())
            )
        )


def _full_name(model: Model) -> str:
    return f"{model.owner.name}/{model.name}"
