"""Saved connection profiles (``algora login``), owner-readable only."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from algora.settings import Settings

__all__ = ["Connection", "resolve_connection", "save_profile"]

DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Connection:
    url: str
    key: str | None


def _config_path(settings: Settings) -> Path:
    return settings.config_file.expanduser()


def _load(path: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    profiles = data.get("profiles") if isinstance(data, dict) else None
    return profiles if isinstance(profiles, dict) else {}


def save_profile(
    url: str, key: str, profile: str = "default", settings: Settings | None = None
) -> Path:
    path = _config_path(settings or Settings())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    profiles = _load(path)
    profiles[profile] = {"url": url.rstrip("/"), "key": key}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"profiles": profiles}, handle, indent=2)
    path.chmod(0o600)
    return path


def resolve_connection(
    url: str | None = None,
    key: str | None = None,
    profile: str = "default",
    settings: Settings | None = None,
) -> Connection:
    """Explicit arguments, else ALGORA_URL / ALGORA_KEY, else the saved profile."""
    settings = settings or Settings()
    saved = _load(_config_path(settings)).get(profile, {})
    return Connection(
        url=(url or settings.url or saved.get("url") or DEFAULT_URL).rstrip("/"),
        key=key or settings.key or saved.get("key"),
    )
