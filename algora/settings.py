"""The one reader of the environment: every ``ALGORA_*`` variable is a field here."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "BUCKET_PATTERN",
    "CONNECTOR_NAME_PATTERN",
    "DataConnector",
    "S3Endpoint",
    "Settings",
    "store_location",
]

BUCKET_PATTERN = re.compile(
    r"^(?!\d+\.\d+\.\d+\.\d+$)(?!.*\.\.)[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]\Z"
)
"""An S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens, no ``..``, not an IP."""
CONNECTOR_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
"""A connector's name (its label in ``s3+NAME://``), and a principal's name in its lists."""
ConnectorName = Annotated[str, StringConstraints(pattern=CONNECTOR_NAME_PATTERN.pattern)]


class S3Endpoint(BaseModel):
    """An S3-compatible endpoint and the credentials that reach it: what a data connector and
    the S3 store (``store_s3``) are configured with. The secret is a ``SecretStr``: it is
    never logged, shown in a repr or returned by any route."""

    # Errors never echo the input: a misspelt field's value may be the secret.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    type: Literal["s3"] = "s3"
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str = Field(min_length=1)
    secret_access_key: SecretStr
    addressing_style: Literal["auto", "path", "virtual"] = "auto"

    @field_validator("endpoint_url")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("endpoint_url is an http:// or https:// URL")
        return value


class DataConnector(S3Endpoint):
    """One S3-compatible store an admin lends to hosted data (``s3://bucket/key``).

    The connector reaches its endpoint with its own credentials, never the caller's.
    ``readers`` and ``writers`` name principals or organizations (``*``: any authenticated
    user); an organization in ``writers`` lets its viewers read and its other members write.
    Writers also read, and admins always do both.
    """

    buckets: list[str] = Field(min_length=1)
    readers: list[str] = Field(default_factory=list)
    writers: list[str] = Field(default_factory=list)

    @field_validator("buckets")
    @classmethod
    def _check_buckets(cls, value: list[str]) -> list[str]:
        for bucket in value:
            if not BUCKET_PATTERN.match(bucket):
                raise ValueError(f"'{bucket}' is not an S3 bucket name")
        return value

    @field_validator("readers", "writers")
    @classmethod
    def _check_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if name != "*" and not CONNECTOR_NAME_PATTERN.fullmatch(name):
                raise ValueError(f"'{name}' is not a principal or organization name, nor '*'")
        return value


def store_location(url: str) -> tuple[str, str]:
    """The bucket and key prefix (no slash at either end; may be empty) of ``s3://BUCKET/PREFIX``.

    Raises ValueError saying what is wrong."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or parts.query or parts.fragment:
        raise ValueError("store_url is s3://BUCKET or s3://BUCKET/PREFIX")
    if not BUCKET_PATTERN.match(parts.netloc):
        raise ValueError(f"'{parts.netloc}' in store_url is not an S3 bucket name")
    prefix = parts.path.strip("/")
    if any(segment in ("", ".", "..") for segment in prefix.split("/")) and prefix:
        raise ValueError("store_url's prefix has an empty, '.' or '..' segment")
    return parts.netloc, prefix


class Settings(BaseSettings):
    """Platform configuration; the embedded defaults need no configuration at all."""

    # Errors never echo their input: a database URL or a connector's secret may be in it.
    model_config = SettingsConfigDict(
        env_prefix="ALGORA_", extra="ignore", hide_input_in_errors=True
    )

    data_dir: Path = Field(default=Path(".algora"))
    """Directory holding the SQLite registry, the content-addressed store, environments and logs."""

    host: str = "127.0.0.1"
    """Address the gateway listens on."""

    port: int = 8000
    """TCP port the gateway listens on."""

    grpc_port: int | None = Field(default=None, ge=1, le=65535)
    """TCP port of the Open Inference Protocol over gRPC (``inference.GRPCInferenceService``),
    on the same host as the gateway; default: no gRPC server."""

    database_url: str | None = None
    """SQLAlchemy URL of the registry; default: SQLite (WAL) at ``DATA_DIR/registry.db``."""

    python: str = Field(default=sys.executable)
    """Interpreter that model environments are built from (uv resolves the base interpreter)."""

    index_url: str = "https://pypi.org/simple"
    """The package index that model dependencies are locked and installed from."""

    uv_cache_dir: Path | None = None
    """uv's download cache; default: uv's own per-user cache, shared by every data directory."""

    max_archive_bytes: int = 512 * 1024 * 1024
    """Largest model archive accepted at publish, and the cap on its unpacked size."""

    git_request_timeout: float = Field(default=600.0, gt=0)
    """Seconds one git clone, fetch or push over HTTP may take, slow clients included; past
    it the request ends and git's backend process is stopped."""

    max_archive_members: int = 10_000
    """Most files and folders a model archive may hold."""

    max_request_bytes: int = 64 * 1024 * 1024
    """Largest call body accepted by the gateway."""

    max_api_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Largest body of any other request: the JSON of ``/api/v1`` and of Algorithmia's
    management routes. Each family of routes has its own cap, checked before a byte is read
    (413 for a larger declared ``Content-Length``) and as the body arrives: model calls
    ``max_request_bytes``, archives and git pushes ``max_archive_bytes``, hosted data
    ``max_data_file_bytes``. The body of a request with no valid key is never read (401)."""

    body_read_timeout: float = Field(default=30.0, gt=0)
    """Seconds a request body may go without a byte arriving while the server waits for it;
    past it the request is answered 408 and the connection closed."""

    default_call_timeout: float = 60.0
    """Seconds a call may run when the model's manifest sets no timeout."""

    max_call_timeout: float = 300.0
    """Upper bound on any call's timeout, whatever the manifest or the caller asks for."""

    worker_start_timeout: float = 120.0
    """Seconds a worker may take to import and load its model before it counts as failed."""

    worker_backend: Literal["local", "ray"] = "local"
    """Where model workers run: ``local``, as subprocesses of the gateway, or ``ray``, each as an
    actor on a node of the Ray cluster at ``ray_address`` (install ``algora[ray]`` on the
    gateway and on every node; [running workers on Ray](ray.md))."""
    ray_address: str = "auto"
    """The Ray cluster the ``ray`` worker backend connects to: ``auto`` for the head started on
    this machine (``ray start --head``), else its ``HOST:PORT``, or ``ray://HOST:PORT`` through
    Ray Client's proxy on the head."""

    pool_idle_seconds: float = 900.0
    """A version's workers are stopped after this many seconds without a call (0: never)."""
    worker_memory_budget_mb: int | None = Field(default=None, ge=64)
    """Memory (MiB of PSS) that all model workers together may hold: when a version's workers
    start and the total is past it, idle versions' workers are stopped, least recently used
    first (their next call starts them again). Default: three quarters of the machine's."""
    zygotes: bool = True
    """Fork a Python model's workers from a warm zygote of its environment (one interpreter per
    environment that has imported its packages), so that a cold start is a fork and the model's
    load, not the imports (docs/operations.md, "Cold starts"); false: each worker starts a new
    interpreter."""
    zygote_idle_seconds: float = 1800.0
    """Seconds a zygote is kept without any worker of its environment before it is stopped."""
    warm_on_publish: bool = True
    """Start a version's workers as soon as its publish succeeds, so that its first call finds
    them loaded (they stop after ``pool_idle_seconds`` without a call, as any)."""

    build_timeout: float = 1800.0
    """Seconds a publish may spend locking, installing and running its build command."""

    url: str | None = None
    """Gateway URL that the CLI and the SDK talk to; default: the saved profile, else localhost."""

    key: str | None = None
    """API key that the CLI and the SDK send; default: the saved profile's key."""

    config_file: Path = Field(default=Path("~/.config/algora/config.json"))
    """Where ``algora login`` saves profiles (mode 0600)."""

    policy_file: Path | None = None
    """TOML dependency policy enforced at publish (allowed and denied packages, vulnerability
    scan); default: none, which allows every package and only warns about vulnerabilities."""

    trusted_proxies: list[str] = Field(default_factory=list)
    """Proxies (CIDRs as a JSON list, e.g. ``["10.0.0.0/8"]``) whose ``X-Forwarded-For`` the audit
    log records; from any other peer the header is ignored. Default: none."""

    audit_enabled: bool = True
    """Write the audit log. For measuring its cost only: a governed platform keeps it on."""

    audit_in_process: bool = True
    """On SQLite, journal audit rows in the gateway's own process (one write per turn of its
    event loop) rather than in a writer process: the same durability, without two crossings
    between processes before each answer. PostgreSQL always commits in a writer process."""

    audit_max_commit_lag: float = Field(default=5.0, gt=0, le=3600)
    """Seconds (SQLite only) that audit rows may wait in the audit writer's journal for the
    database: while older rows cannot be committed (a database that is locked, full or
    failing), calls are refused with 503 instead of piling up more rows in the journal."""

    secrets_key: SecretStr | None = None
    """The key that encrypts model secrets at rest: the URL-safe base64 of 32 random bytes
    (``python -c "import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())"``).
    Gateways sharing one registry must all set the same key. Default: a key generated on first
    use in ``DATA_DIR/secrets.key`` (mode 0600). Secrets sealed with another key are refused."""

    sandbox: Literal["auto", "required", "off"] = "auto"
    """Sandbox (bubblewrap) of workers and build commands, one rule for both: ``auto`` uses it
    when ``bwrap`` works here, and otherwise builds and serves without it, saying so once at
    start-up; ``required`` refuses to build or serve without it; ``off`` never uses it (models
    then reach the network and every file the server's user can read)."""

    worker_memory_mb: int = Field(default=4096, ge=32)
    """Memory (MiB of data segment) a worker may use when its manifest sets no ``memory_mb``;
    past it the worker is killed and restarted and the caller gets ``worker_died``."""

    worker_cpu_seconds: float = Field(default=3600.0, gt=0)
    """CPU seconds one call (or batch) may use when the manifest sets no ``cpu_seconds``; past
    it the worker is killed and restarted and the caller gets ``worker_died``."""

    allowed_hosts: list[str] = Field(default_factory=lambda: ["localhost", "127.0.0.1", "::1"])
    """Names the gateway answers to in the ``Host`` header (JSON list; the bind address ``host``
    is always allowed too); any other gets 400 ``bad_host``, which defeats DNS rebinding. Add
    the names clients and load balancers use, or ``["*"]`` to allow any. ``/healthz`` and
    ``/readyz`` answer whatever the Host, for orchestrators' probes."""

    allowed_origins: list[str] = Field(default_factory=list)
    """Web origins (``https://ui.example.com``) besides the gateway's own whose pages may send
    state-changing requests; a POST, PUT, PATCH or DELETE with any other ``Origin`` header gets
    403 ``forbidden_origin``. API clients send no ``Origin`` and are not affected."""

    default_rate_per_second: float | None = Field(default=None, gt=0)
    """Calls a second (and management writes) allowed to a key for which neither the key, its
    principal nor its organization sets a limit; past it the caller gets 429 with
    ``Retry-After``. Default: none, unlimited."""

    default_burst: int | None = Field(default=None, ge=1)
    """Calls a key without a limit of its own may make at once, with ``default_rate_per_second``;
    default: one second's worth of calls."""

    gateway_lease_seconds: float = Field(default=30.0, ge=1, le=3600)
    """How long a gateway that stops renewing its lease (every sixth of this) counts as alive:
    past it, the other gateways on the registry fail the builds it was running. A gateway
    restarted on the same host fails its earlier self's builds at once."""

    rate_limit_backend: Literal["auto", "memory", "database"] = "auto"
    """Where rate limits' token buckets live: ``memory``, in each gateway (several gateways
    behind a load balancer then each admit a key's full limit); ``database``, in the registry,
    shared by every gateway on it (a call of a key that has a limit costs one short write
    there; a key without one costs nothing); ``auto``, ``database`` when the registry is
    PostgreSQL (where several gateways are expected) and ``memory`` on SQLite."""

    max_data_file_bytes: int = Field(default=5 * 1024 * 1024 * 1024, ge=0)
    """Largest file accepted into hosted data (``/v1/data``); uploads are streamed to disk and
    a larger one is refused with 413, leaving no partial file."""

    data_connectors: dict[ConnectorName, DataConnector] = Field(default_factory=dict)
    """S3-compatible stores reachable as hosted data, by connector name (JSON), e.g.
    ``{"lake": {"endpoint_url": "https://s3.example.com", "region": "eu-west-1",
    "access_key_id": "...", "secret_access_key": "...", "buckets": ["lake"], "readers":
    ["analysts"], "writers": ["etl"]}}``. ``s3://bucket/key`` uses the first connector that
    lists the bucket and lets the caller read (or write) it; ``s3+NAME://bucket/key`` names one.
    ``readers`` and ``writers`` name principals or organizations (``*``: any user; an
    organization's viewers only read); admins always read and write. Key scopes narrow it as
    ``data:read:s3.NAME/BUCKET``. ``type`` is ``s3``; ``endpoint_url`` defaults to AWS;
    ``addressing_style`` is ``auto``, ``path`` (most S3-compatible servers) or ``virtual``.
    The secret is never logged nor returned. Uploads are capped by ``max_data_file_bytes``.
    Default: none."""

    store_url: str | None = None
    """Where version artifacts (archives, built files, SBOMs) are kept, content-addressed and
    written once: ``s3://BUCKET/PREFIX`` keeps them in an S3-compatible bucket that several
    gateways share (with ``store_s3``; needs ``pip install 'algora[s3]'``). Default: the local
    store in ``DATA_DIR/blobs``. Each gateway still keeps the files its workers run from on its
    own disk, fetched from the bucket by digest before it starts a version's workers."""

    store_s3: S3Endpoint | None = None
    """The endpoint and credentials of an ``s3://`` ``store_url`` (JSON, a data connector's
    fields without buckets and readers), e.g. ``{"endpoint_url": "https://s3.example.com",
    "region": "eu-west-1", "access_key_id": "...", "secret_access_key": "...",
    "addressing_style": "path"}``; ``endpoint_url`` defaults to AWS. The secret is never
    logged nor returned."""

    protected_aliases: list[str] = Field(default_factory=list)
    """Aliases (JSON list, e.g. ``["production"]``) of every model that move only by promotion:
    setting one creates a request that a second principal holding ``aliases:approve`` and manage
    rights on the model must approve; they cannot be deleted. Default: none."""

    protected_aliases_by_owner: dict[str, list[str]] = Field(default_factory=dict)
    """More protected aliases for the models of one owner (a user or an organization), as a
    JSON object: ``{"acme": ["production", "staging"]}``; added to ``protected_aliases``."""

    promotion_expiry_seconds: float = Field(default=7 * 24 * 3600.0, gt=0)
    """Seconds a promotion request waits for approval before it expires (default: a week)."""

    feedback_retention_days: float = Field(default=30.0, gt=0, le=3660)
    """Days a call's record (what a version with ``[monitoring] feedback = true`` answered) is
    kept: ground truth for a call is taken that long after it, and comparisons reach that far
    back (default: 30)."""

    sample_retention_days: float = Field(default=7.0, gt=0, le=3660)
    """Days a payload sample (inputs and outputs of the calls a model's sampling rule drew) is
    kept before its stored payloads and its index row are removed (default: 7)."""

    metrics_enabled: bool = True
    """Whether each request is counted for ``GET /metrics`` (requests, model calls, their
    latency). Off, that per-call work is skipped; pools, workers and the process are still
    read when scraped."""
    alert_interval_seconds: float = Field(default=30.0, ge=0.1, le=3600)
    """How often a gateway evaluates the alert rules (``algora alert``); with several gateways
    on one registry, each rule is evaluated by one of them a round."""

    alert_retry_seconds: float = Field(default=10.0, ge=0.05, le=3600)
    """The wait before a failed webhook delivery's first retry; each next wait is twice the
    one before (10 s, 20 s, 40 s, ...)."""

    alert_max_attempts: int = Field(default=5, ge=1, le=20)
    """Tries of one webhook delivery before it is recorded as failed."""

    alert_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    """How long a webhook has to answer one try (connecting included)."""

    webhook_allowed_hosts: list[str] = Field(default_factory=list)
    """Hosts (JSON list, e.g. ``["hooks.example.com", "10.0.0.7"]``) that alert webhooks may
    name; a rule's URL on any other host is refused, and so is a delivery to one. Default:
    empty, any host (managers of a model choose where its alerts go)."""

    log_level: str = "INFO"
    """Level of the server's log output (DEBUG, INFO, WARNING, ERROR)."""

    log_format: Literal["text", "json"] = "text"
    """The server's log lines: ``text`` for a terminal, or ``json``, one object per line (time,
    level, logger, message, and the request id, model and version of the request being
    served) for a log pipeline."""

    otel_endpoint: str | None = None
    """OTLP/HTTP endpoint that receives the call path's OpenTelemetry traces
    (``http://collector:4318/v1/traces``; needs ``pip install 'algora[otel]'``). Unset: no
    tracing, at no cost."""

    otel_service: str = "algora"
    """The ``service.name`` of the gateway's spans."""

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @field_validator("store_url")
    @classmethod
    def _check_store_url(cls, value: str | None) -> str | None:
        if value is not None:
            store_location(value)
        return value

    @property
    def shared_rate_limits(self) -> bool:
        """Whether rate-limit buckets live in the registry (see ``rate_limit_backend``)."""
        if self.rate_limit_backend == "auto":
            return self.resolved_database_url.startswith("postgresql")
        return self.rate_limit_backend == "database"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        # Quoted: SQLAlchemy decodes %-escapes in the path, so a data folder named "%2e%2e"
        # would otherwise put the registry in the folder above it.
        return "sqlite:///" + quote(str(self.resolved_data_dir / "registry.db"))
