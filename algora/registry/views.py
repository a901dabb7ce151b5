"""Frozen views of models and versions: what the services hand to adapters, never ORM rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from algora.db.tables import Model, Version
from algora.db.views import view_of

__all__ = ["ModelView", "VersionView", "model_view", "version_view"]


@dataclass(frozen=True)
class ModelView:
    id: int
    owner: str
    name: str
    description: str
    visibility: str
    tags: tuple[str, ...]
    deprecated: bool
    created_at: datetime

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass(frozen=True)
class VersionView:
    """One version; ``manifest`` and ``lineage`` are copies, so changing them changes nothing."""

    id: int
    model: str
    major: int
    minor: int
    patch: int
    status: str
    content_hash: str | None
    archive_hash: str | None
    environment_hash: str | None
    deprecated: bool
    failure_code: str | None
    failure_reason: str | None
    created_at: datetime
    ready_at: datetime | None
    manifest: dict[str, Any]
    lineage: dict[str, Any]
    input_schema: dict[str, Any] | None
    output_schema: dict[str, Any] | None
    release_notes: str | None
    sample_input: str | None

    @property
    def semver(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def callable(self) -> bool:
        """What ``latest`` may name: ready and not deprecated."""
        return self.status == "ready" and not self.deprecated

    @property
    def entrypoint(self) -> str:
        """What the workers load: ``module:attr``, or ``saved:FORMAT:FILE`` for a saved model."""
        saved = self.manifest.get("saved")
        if isinstance(saved, dict) and saved.get("format"):
            named = f"{saved['model_class']}:" if saved.get("model_class") else ""
            return f"saved:{saved['format']}:{named}{saved.get('file', '')}"
        return str(self.manifest.get("model", {}).get("entrypoint", ""))


def model_view(row: Model) -> ModelView:
    tags = tuple(str(t) for t in row.tags)
    return view_of(ModelView, row, owner=row.owner.name, tags=tags)


def version_view(model: str, row: Version) -> VersionView:
    manifest, lineage = dict(row.manifest), dict(row.lineage)  # copies: see VersionView
    return view_of(VersionView, row, model=model, manifest=manifest, lineage=lineage)
