"""Models and versions in the registry, and the rules of immutability."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from algora.auth.policy import Action, can, require
from algora.auth.principals import Caller
from algora.db.tables import Alias, Model, Principal, Version, utcnow
from algora.errors import (
    AliasNotFound,
    InvalidManifest,
    ModelNotFound,
    NotFound,
    VersionExists,
    VersionNotFound,
    VersionNotReady,
)
from algora.modelfolder.manifest import NAME_PATTERN
from algora.registry.specs import Bump, SemVer, VersionSpec, next_version, parse_semver

__all__ = ["Registry"]

INTERRUPTED = "the server stopped while this version was building; publish it again"


class Registry:
    """Reads and writes models and versions; every method opens its own short session."""

    def __init__(self, sessions: sessionmaker[Session], builder: str | None = None) -> None:
        self._sessions = sessions
        self._builder = builder
        """This gateway's lease (see :mod:`algora.registry.leases`), named on what it builds."""

    # models -------------------------------------------------------------------------------
    def find_model(self, session: Session, owner: str, name: str) -> Model:
        model = session.scalars(
            select(Model).join(Model.owner).where(Principal.name == owner, Model.name == name)
        ).first()
        if model is None:
            raise ModelNotFound(f"model '{owner}/{name}' does not exist")
        return model

    def require_model(
        self, session: Session, caller: Caller, owner: str, name: str, action: Action
    ) -> Model:
        """``owner/name``, once the caller may ``action`` it (hidden from strangers)."""
        model = self.find_model(session, owner, name)
        require(caller, action, model)
        return model

    def get_model(self, caller: Caller, owner: str, name: str) -> Model:
        with self._sessions() as session:
            model = self.require_model(session, caller, owner, name, "read")
            return model

    def list_models(self, caller: Caller) -> list[Model]:
        with self._sessions() as session:
            models = session.scalars(select(Model).order_by(Model.id)).all()
            return [m for m in models if can(caller, "read", m)]

    def update_model(self, caller: Caller, owner: str, name: str, **changes: Any) -> Model:
        with self._sessions() as session:
            model = self.require_model(session, caller, owner, name, "manage")
            for field, value in changes.items():
                if value is not None:
                    setattr(model, field, value)
            session.commit()
            return model

    def _existing_or_new(self, session: Session, owner: str, name: str) -> tuple[Model, bool]:
        """``owner/name``, or an unsaved new model of that owner; and whether it is new."""
        try:
            return self.find_model(session, owner, name), False
        except ModelNotFound:
            principal = session.scalars(select(Principal).where(Principal.name == owner)).first()
            if principal is None:
                raise NotFound(f"owner '{owner}' does not exist") from None
            return Model(owner_id=principal.id, owner=principal, name=name), True

    def check_publish(self, caller: Caller, owner: str, name: str) -> None:
        """Raise unless the caller may publish ``owner/name`` (creating it if it is new)."""
        with self._sessions() as session:
            model, _new = self._existing_or_new(session, owner, name)
            require(caller, "publish", model)

    def model_for_publish(self, caller: Caller, owner: str, name: str, manifest: Any) -> int:
        """The id of ``owner/name``, created for the caller on first publish."""
        if not NAME_PATTERN.match(name):
            raise InvalidManifest(f"'{name}' is not a valid model name")
        with self._sessions() as session:
            model, new = self._existing_or_new(session, owner, name)
            if new:
                require(caller, "publish", model)
                model.description = manifest.model.description
                model.tags = list(manifest.model.tags)
                session.add(model)
                session.commit()
                return model.id
            require(caller, "publish", model)
            model.description = manifest.model.description or model.description
            model.tags = list(manifest.model.tags) or model.tags
            session.commit()
            return model.id

    # versions -----------------------------------------------------------------------------
    def create_version(
        self,
        model_id: int,
        *,
        bump: Bump | None,
        exact: str | None,
        manifest: dict[str, Any],
        lineage: dict[str, Any],
        published_by: int,
    ) -> Version:
        """Reserve the next version number (status ``building``); safe under concurrency."""
        for _attempt in range(5):
            with self._sessions() as session:
                existing = [
                    SemVer(v.major, v.minor, v.patch)
                    for v in session.scalars(select(Version).where(Version.model_id == model_id))
                ]
                if exact is not None:
                    semver = parse_semver(exact)
                    if semver in existing:
                        raise VersionExists(
                            f"version {semver} already exists and versions are immutable: "
                            "publish with a higher version or --bump"
                        )
                else:
                    semver = next_version(existing, bump or "minor")
                version = Version(
                    model_id=model_id,
                    major=semver.major,
                    minor=semver.minor,
                    patch=semver.patch,
                    manifest=manifest,
                    lineage=lineage,
                    published_by=published_by,
                    builder=self._builder,
                )
                session.add(version)
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                    if exact is not None:
                        raise VersionExists(f"version {exact} already exists") from None
                    continue
                return self._load_version(session, version.id)
        raise VersionExists("could not reserve a version number under concurrent publishes")

    def _load_version(self, session: Session, version_id: int) -> Version:
        version = session.get(Version, version_id)
        if version is None:
            raise VersionNotFound(f"version #{version_id} does not exist")
        return version

    def version_by_id(self, version_id: int) -> Version:
        with self._sessions() as session:
            return self._load_version(session, version_id)

    def update_version(self, version_id: int, **changes: Any) -> Version:
        with self._sessions() as session:
            version = self._load_version(session, version_id)
            for field, value in changes.items():
                setattr(version, field, value)
            session.commit()
            return version

    def list_versions(self, caller: Caller, owner: str, name: str) -> list[Version]:
        with self._sessions() as session:
            model = self.require_model(session, caller, owner, name, "read")
            rows: Sequence[Version] = session.scalars(
                select(Version)
                .where(Version.model_id == model.id)
                .order_by(Version.major.desc(), Version.minor.desc(), Version.patch.desc())
            ).all()
            return list(rows)

    def get_version(self, caller: Caller, owner: str, name: str, semver: str) -> Version:
        wanted = parse_semver(semver)
        for version in self.list_versions(caller, owner, name):
            if (version.major, version.minor, version.patch) == (
                wanted.major,
                wanted.minor,
                wanted.patch,
            ):
                return version
        raise VersionNotFound(f"'{owner}/{name}' has no version {semver}")

    def deprecate_version(
        self, caller: Caller, owner: str, name: str, semver: str, deprecated: bool
    ) -> Version:
        version = self.get_version(caller, owner, name, semver)
        with self._sessions() as session:
            self.require_model(session, caller, owner, name, "manage")
            row = self._load_version(session, version.id)
            row.deprecated = deprecated
            session.commit()
            return row

    def resolve(
        self, owner: str, name: str, spec: VersionSpec, caller: Caller | None = None
    ) -> tuple[Model, Version]:
        """The version a spec names: the highest ready, non-deprecated match.

        An exact version or a content hash names one version even when it is deprecated, and
        ``latestPrivate`` the highest ready version, deprecated or not. An alias names the
        version it points at (deprecated or not). With a caller, the right the spec needs
        (``call``; ``manage`` for ``latestPrivate``) is checked before any version is looked at.
        """
        with self._sessions() as session:
            model = self.find_model(session, owner, name)
            if caller is not None:
                require(caller, spec.right, model)
            if spec.kind == "alias":
                return model, self._aliased(session, model, str(spec.alias))
            versions = session.scalars(select(Version).where(Version.model_id == model.id)).all()
            if spec.kind == "hash":
                prefix = spec.hash_prefix or ""
                matches = [v for v in versions if (v.content_hash or "").startswith(prefix)]
            else:
                matches = [v for v in versions if spec.matches(SemVer(v.major, v.minor, v.patch))]
            ready = [v for v in matches if v.status == "ready"]
            if spec.kind not in ("exact", "hash", "latest_private"):
                ready = [v for v in ready if not v.deprecated]
            if not ready:
                if matches and spec.kind in ("exact", "hash"):
                    only = matches[0]
                    raise VersionNotReady(
                        f"'{owner}/{name}' version {only.semver} is {only.status}"
                        + (f": {only.failure_reason}" if only.failure_reason else ""),
                        details={"status": only.status},
                    )
                raise VersionNotFound(f"'{owner}/{name}' has no ready version matching '{spec}'")
            best = max(ready, key=lambda v: (v.major, v.minor, v.patch))
            return model, best

    def _aliased(self, session: Session, model: Model, alias: str) -> Version:
        row = session.scalars(
            select(Alias).where(Alias.model_id == model.id, Alias.name == alias)
        ).first()
        full_name = f"{model.owner.name}/{model.name}"
        if row is None:
            raise AliasNotFound(
                f"'{full_name}' has no alias '{alias}': list them with "
                f"'algora alias list {full_name}'"
            )
        version = row.version
        if version.status != "ready":  # aliases only ever point at ready versions
            raise VersionNotReady(
                f"'{full_name}' alias '{alias}' points at {version.semver}, which is "
                f"{version.status}",
                details={"status": version.status},
            )
        return version

    def fail_interrupted_builds(self, alive: set[str]) -> int:
        """Mark the versions building on no ``alive`` gateway (their gateway stopped) as failed."""
        with self._sessions() as session:
            stale = session.scalars(
                select(Version).where(
                    Version.status == "building",
                    or_(Version.builder.is_(None), Version.builder.not_in(alive)),
                )
            ).all()
            for version in stale:
                version.status = "failed"
                version.failure_code = "interrupted"
                version.failure_reason = INTERRUPTED
                version.ready_at = None
            session.commit()
            return len(stale)

    def mark_ready(self, version_id: int, **changes: Any) -> Version:
        return self.update_version(version_id, status="ready", ready_at=utcnow(), **changes)
