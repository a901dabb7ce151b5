"""What reading a model folder's manifest found, whichever layout the folder has."""

from __future__ import annotations

from dataclasses import dataclass

from algora.modelfolder.manifest import Manifest

__all__ = ["FoundManifest"]


@dataclass(frozen=True)
class FoundManifest:
    """A model folder's manifest and where it came from."""

    manifest: Manifest
    origin: str
    """``algora.toml``, or ``algorithmia.conf`` for a manifest derived from Algorithmia's layout."""
    notes: tuple[str, ...] = ()
    """What a build log should say about the derivation (versions, settings mapped)."""
