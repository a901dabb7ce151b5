"""The one reader of the environment: every ``ALGORA_*`` variable is a field here."""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Platform configuration; the embedded defaults need no configuration at all."""

    model_config = SettingsConfigDict(env_prefix="ALGORA_", extra="ignore")

    data_dir: Path = Field(default=Path(".algora"))
    """Directory holding the SQLite registry, the content-addressed store, environments and logs."""

    host: str = "127.0.0.1"
    """Address the gateway listens on."""

    port: int = 8000
    """TCP port the gateway listens on."""

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

    max_archive_members: int = 10_000
    """Most files and folders a model archive may hold."""

    max_request_bytes: int = 64 * 1024 * 1024
    """Largest call body accepted by the gateway."""

    default_call_timeout: float = 60.0
    """Seconds a call may run when the model's manifest sets no timeout."""

    max_call_timeout: float = 300.0
    """Upper bound on any call's timeout, whatever the manifest or the caller asks for."""

    worker_start_timeout: float = 120.0
    """Seconds a worker may take to import and load its model before it counts as failed."""

    build_timeout: float = 1800.0
    """Seconds a publish may spend locking, installing and running its build command."""

    url: str | None = None
    """Gateway URL that the CLI and the SDK talk to; default: the saved profile, else localhost."""

    key: str | None = None
    """API key that the CLI and the SDK send; default: the saved profile's key."""

    config_file: Path = Field(default=Path("~/.config/algora/config.json"))
    """Where ``algora login`` saves profiles (mode 0600)."""

    log_level: str = "INFO"
    """Level of the server's log output (DEBUG, INFO, WARNING, ERROR)."""

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir / 'registry.db'}"
