"""Registry tables. Changed only through migrations in ``algora/db/migrations``; what the
gateways share besides (statistics, sessions, buckets, the search index) is in
:mod:`algora.db.shared_state`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "Alias",
    "AliasTarget",
    "ApiKey",
    "AuditEventRow",
    "Base",
    "Build",
    "CallRecord",
    "DataCollection",
    "Environment",
    "Grant",
    "KeyModelLimit",
    "Membership",
    "Model",
    "ModelSecret",
    "ModelSource",
    "Principal",
    "PrincipalProfile",
    "PromotionRequest",
    "Quota",
    "Version",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Principal(Base):
    """A user, an organization (``org``) or a service account (``service``): owns models and
    keys. A service account belongs to ``owner_id`` (a user or an organization)."""

    __tablename__ = "principals"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="user")
    is_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    rate_per_second: Mapped[float | None] = mapped_column(default=None)
    """Default call rate for this principal's keys that set none (None: no default)."""
    burst: Mapped[int | None] = mapped_column(default=None)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("principals.id"), default=None)
    """The user or organization a service account belongs to (None for others)."""

    memberships: Mapped[list[Membership]] = relationship(
        primaryjoin="Principal.id == Membership.member_id", lazy="selectin", viewonly=True
    )
    """The organizations this principal is a member of, with its role in each."""


class Membership(Base):
    """A principal's role in an organization: owner, admin, member or viewer."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("org_id", "member_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("principals.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("principals.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """An API key, stored only as the SHA-256 of its secret."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id"))
    name: Mapped[str] = mapped_column(String(128), default="")
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_address: Mapped[str | None] = mapped_column(String(64), default=None)
    model_calls_only: Mapped[bool] = mapped_column(default=False)
    """Usable only by calls made from inside models (see ``algora.auth.policy``)."""
    rate_per_second: Mapped[float | None] = mapped_column(default=None)
    """This key's own call rate (None: its principal's default, if any)."""
    burst: Mapped[int | None] = mapped_column(default=None)

    principal: Mapped[Principal] = relationship(lazy="joined")


class KeyModelLimit(Base):
    """A key's limit for the models a pattern names (``owner/name`` or ``owner/*``).

    Applies on top of the key's own limit; one bucket covers every model the pattern matches.
    """

    __tablename__ = "key_model_limits"
    __table_args__ = (UniqueConstraint("key_id", "pattern"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    pattern: Mapped[str] = mapped_column(String(129))
    rate_per_second: Mapped[float]
    burst: Mapped[int | None] = mapped_column(default=None)


class Quota(Base):
    """A budget of calls or compute seconds per day or month (UTC) for an organization's keys
    (``subject`` ``org:<principal id>``) or one key (``key:<key id>``); see
    ``algora.registry.quotas``."""

    __tablename__ = "quotas"
    __table_args__ = (UniqueConstraint("subject", "metric", "period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(48))
    metric: Mapped[str] = mapped_column(String(16))
    """``calls`` or ``compute_seconds``."""
    period: Mapped[str] = mapped_column(String(8))
    """``day`` or ``month``."""
    amount: Mapped[float]
    created_by: Mapped[int] = mapped_column(ForeignKey("principals.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Model(Base):
    """``owner/name``: a deployable unit with many immutable versions."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("principals.id"))
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    visibility: Mapped[str] = mapped_column(String(16), default="private")
    tags: Mapped[list[Any]] = mapped_column(default=list)
    deprecated: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    owner: Mapped[Principal] = relationship(lazy="joined")
    grants: Mapped[list[Grant]] = relationship(lazy="selectin")


class Grant(Base):
    """An explicit right on a model for a user, service account or organization: ``call``
    (read and call) or ``manage`` (also publish and change it)."""

    __tablename__ = "grants"
    __table_args__ = (UniqueConstraint("model_id", "grantee_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    grantee_id: Mapped[int] = mapped_column(ForeignKey("principals.id"))
    right: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Environment(Base):
    """A built environment: identified by the hash of (interpreter, lock)."""

    __tablename__ = "environments"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    python_version: Mapped[str] = mapped_column(String(32))
    lock: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Version(Base):
    """An immutable ``MAJOR.MINOR.PATCH`` of a model."""

    __tablename__ = "versions"
    __table_args__ = (
        UniqueConstraint("model_id", "major", "minor", "patch"),
        Index("ix_versions_model_status", "model_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    major: Mapped[int]
    minor: Mapped[int]
    patch: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), default="building")
    content_hash: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    archive_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    environment_hash: Mapped[str | None] = mapped_column(
        ForeignKey("environments.hash"), default=None
    )
    manifest: Mapped[dict[str, Any]] = mapped_column(default=dict)
    input_schema: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    output_schema: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    lineage: Mapped[dict[str, Any]] = mapped_column(default=dict)
    build_log: Mapped[str] = mapped_column(Text, default="")
    failure_reason: Mapped[str | None] = mapped_column(Text, default=None)
    failure_code: Mapped[str | None] = mapped_column(String(64), default=None)
    deprecated: Mapped[bool] = mapped_column(default=False)
    published_by: Mapped[int | None] = mapped_column(ForeignKey("principals.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ready_at: Mapped[datetime | None] = mapped_column(default=None)
    release_notes: Mapped[str | None] = mapped_column(Text, default=None)
    """What the publisher said of this version (Algorithmia's ``version_info.release_notes``)."""
    sample_input: Mapped[str | None] = mapped_column(Text, default=None)
    """An example input the publisher gave (Algorithmia's ``version_info.sample_input``)."""
    builder: Mapped[str | None] = mapped_column(String(32), default=None)
    """The gateway (its lease's ``instance``) that builds this version while it is building."""

    model: Mapped[Model] = relationship(lazy="joined")
    environment: Mapped[Environment | None] = relationship(lazy="joined")

    @property
    def semver(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


class DataCollection(Base):
    """A hosted data collection ``data://owner/name`` and its read ACL.

    ``read_acl`` is Algorithmia's list: ``[]`` private (the owner and, for an organization,
    its members), ``["user://*"]`` any authenticated user, ``["algo://.my/*"]`` also the
    owner's models, whoever calls them (``algora.auth.delegation``).
    """

    __tablename__ = "data_collections"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("principals.id"))
    name: Mapped[str] = mapped_column(String(64))
    read_acl: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# 64-bit ids on PostgreSQL; SQLite's INTEGER is 64-bit already (and stays the rowid).
_AuditId = BigInteger().with_variant(Integer(), "sqlite")


class AuditEventRow(Base):
    """One audit event: a call or a change, hash-chained to the row before it.

    Ids are assigned by the audit writer under the chain lock, so they are gapless; no foreign
    keys, so that rows outlive the principals and models they name.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_principal_received", "principal", "received_at"),
        Index("ix_audit_events_resource_received", "resource", "received_at"),
    )

    id: Mapped[int] = mapped_column(_AuditId, primary_key=True, autoincrement=False)
    received_at: Mapped[datetime]
    completed_at: Mapped[datetime]
    principal: Mapped[str | None] = mapped_column(String(64))
    principal_id: Mapped[int | None]
    key_id: Mapped[str | None] = mapped_column(String(32))
    auth_method: Mapped[str] = mapped_column(String(8))
    peer: Mapped[str | None] = mapped_column(String(64))
    forwarded_for: Mapped[str | None] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    resource: Mapped[str | None] = mapped_column(String(255))
    version: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(128))
    parent_request_id: Mapped[str | None] = mapped_column(String(128))
    decision: Mapped[str] = mapped_column(String(8))
    status: Mapped[int]
    error_code: Mapped[str | None] = mapped_column(String(64))
    latency_ms: Mapped[float]
    bytes_in: Mapped[int | None] = mapped_column(BigInteger)
    bytes_out: Mapped[int | None] = mapped_column(BigInteger)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditJournalMark(Base):
    """How far into an audit journal the committed rows reach (see ``algora.audit.journal``).

    Updated in the transaction that commits the rows, so a journal left by a writer that died
    is replayed from exactly where its commits stopped.
    """

    __tablename__ = "audit_journal_marks"

    journal: Mapped[str] = mapped_column(String(64), primary_key=True)
    committed_bytes: Mapped[int] = mapped_column(BigInteger)


class Alias(Base):
    """A mutable name (``production``) of a model that points at one of its ready versions.

    Aliases move; versions do not. A name never reads as a version spec (see
    ``algora.registry.specs.is_alias_name``), so an alias never shadows one.
    """

    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("model_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    name: Mapped[str] = mapped_column(String(32))
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))
    sticky: Mapped[bool] = mapped_column(default=False)
    """With a split: each caller's key keeps to one version (see ``registry.routing``)."""
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("principals.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    version: Mapped[Version] = relationship(lazy="joined")


class PromotionRequest(Base):
    """A request to move a protected alias, waiting for a second principal's approval.

    ``status``: ``pending``, ``approved``, ``rejected``, ``expired`` or ``superseded`` (a newer
    request for the same alias replaced it). Only approval moves the alias.
    """

    __tablename__ = "promotion_requests"
    __table_args__ = (Index("ix_promotion_requests_model_status", "model_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    alias: Mapped[str] = mapped_column(String(32))
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))
    from_version_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id"), default=None)
    """The version the alias pointed at when the request was made (None: it did not exist)."""
    requested_by: Mapped[int] = mapped_column(ForeignKey("principals.id"))
    note: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("principals.id"), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    decision_note: Mapped[str] = mapped_column(String(500), default="")


class ModelSource(Base):
    """A model's source repository: a bare git repository served at ``/git/owner/name.git``
    (see ``algora.registry.sources``); pushes to ``default_branch`` start builds."""

    __tablename__ = "model_sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), unique=True)
    default_branch: Mapped[str] = mapped_column(String(255), default="master")
    language: Mapped[str] = mapped_column(String(32), default="python3")
    """The runtime template the repository was seeded from."""
    created_by: Mapped[int | None] = mapped_column(ForeignKey("principals.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Build(Base):
    """One build (Algorithmia's ``compile``) of a commit of a model's source repository:
    every step of a publish up to a ready version, minus the version.

    ``status``: ``in-progress``, ``succeeded`` or ``failed``. A succeeded build keeps what it
    produced (hashes, schemas, manifest, policy lineage), so publishing it builds nothing;
    ``version_id`` is the version it was published as (at most one).
    """

    __tablename__ = "builds"
    __table_args__ = (Index("ix_builds_model_started", "model_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    build_id: Mapped[str] = mapped_column(String(36), unique=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    commit_sha: Mapped[str] = mapped_column(String(64))
    trigger: Mapped[str] = mapped_column(String(16))
    """``push`` or ``compile``."""
    status: Mapped[str] = mapped_column(String(16), default="in-progress", index=True)
    started_by: Mapped[int | None] = mapped_column(ForeignKey("principals.id"), default=None)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    log: Mapped[str] = mapped_column(Text, default="")
    """The whole build log once the build has finished (while it runs: a file, see builds)."""
    failure_code: Mapped[str | None] = mapped_column(String(64), default=None)
    failure_reason: Mapped[str | None] = mapped_column(Text, default=None)
    manifest: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    content_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    archive_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    environment_hash: Mapped[str | None] = mapped_column(
        ForeignKey("environments.hash"), default=None
    )
    input_schema: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    output_schema: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    lineage: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version_id: Mapped[int | None] = mapped_column(
        ForeignKey("versions.id"), default=None, unique=True
    )
    builder: Mapped[str | None] = mapped_column(String(32), default=None)
    """The gateway (its lease's ``instance``) that runs this build while it is in progress."""


class ModelSecret(Base):
    """A secret of one model: an environment variable (``env_name``) of its workers.

    ``sealed`` is the value encrypted with the server's secrets key (see
    ``algora.registry.secrets``), bound to its model and name; ``key_id`` names the key that
    sealed it. Values are never returned, logged or audited.
    """

    __tablename__ = "model_secrets"
    __table_args__ = (UniqueConstraint("model_id", "env_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    env_name: Mapped[str] = mapped_column(String(128))
    short_name: Mapped[str] = mapped_column(String(64))
    """A display name (Algorithmia's ``short_name``)."""
    description: Mapped[str] = mapped_column(String(500), default="")
    sealed: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("principals.id"), default=None)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("principals.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PrincipalProfile(Base):
    """What Algorithmia's API says of a user or an organization beyond its name: contact
    details that Algora keeps and shows but never acts on."""

    __tablename__ = "principal_profiles"

    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id"), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), default="")
    full_name: Mapped[str] = mapped_column(String(128), default="")
    """A user's full name, or an organization's label."""
    contact_name: Mapped[str] = mapped_column(String(128), default="")
    url: Mapped[str] = mapped_column(String(512), default="")
    company_name: Mapped[str] = mapped_column(String(128), default="")
    company_role: Mapped[str] = mapped_column(String(128), default="")
    org_type: Mapped[str] = mapped_column(String(16), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AliasTarget(Base):
    """A version an alias routes calls to when it is more than one pointer: a share of its
    calls (``weight``, out of the weights of its alias's targets) or, with ``shadow``, a copy
    of each call whose answer is discarded. An alias without targets sends every call to
    ``aliases.version_id``, which names the heaviest target when there are some."""

    __tablename__ = "alias_targets"
    __table_args__ = (UniqueConstraint("alias_id", "version_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    alias_id: Mapped[int] = mapped_column(ForeignKey("aliases.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))
    weight: Mapped[int]
    shadow: Mapped[bool]


class CallRecord(Base):
    """What a version whose manifest opts in (``[monitoring] feedback = true``) answered one
    call: the output as JSON text (None when it was no JSON or larger than the cap, so not
    scorable), and later the ground truth sent for it (``label`` as JSON text, or ``value``) and
    its score. A shadow's copy has its own row under the request id of the call it copied
    (``shadow``), so the two answers can be compared. Pruned after the retention period."""

    __tablename__ = "call_records"
    __table_args__ = (
        UniqueConstraint("request_id", "shadow"),
        Index("ix_call_records_model_time", "model_id", "created_at"),
        Index("ix_call_records_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128))
    shadow: Mapped[bool]
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))
    alias: Mapped[str] = mapped_column(String(64))
    """The alias the call named; empty when it named a version."""
    caller: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    output: Mapped[str | None] = mapped_column(Text, default=None)
    label: Mapped[str | None] = mapped_column(Text, default=None)
    value: Mapped[float | None] = mapped_column(default=None)
    feedback_at: Mapped[datetime | None] = mapped_column(default=None)
    feedback_by: Mapped[str | None] = mapped_column(String(255), default=None)
    correct: Mapped[bool | None] = mapped_column(default=None)
    abs_error: Mapped[float | None] = mapped_column(default=None)
