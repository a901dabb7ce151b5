"""Find a model folder's manifest by asking each layout Algora reads, in order.

Algora's own ``algora.toml`` always wins; a folder without one is read as the first other
layout that recognises it (a pipeline's ``pipeline.toml``, :mod:`algora.modelfolder.pipeline`;
Algorithmia's, :mod:`algora.modelfolder.algorithmia`), else as a saved model published with
no code (:mod:`algora.modelfolder.saved`). The SDK, the CLI, publish and git builds all find
manifests here, so they agree on every folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from algora.errors import InvalidManifest
from algora.modelfolder import algorithmia, saved
from algora.modelfolder.found import FoundManifest
from algora.modelfolder.manifest import MANIFEST_NAME, load_manifest, validate_manifest
from algora.modelfolder.pipeline import PIPELINE_NAME, manifest_data

__all__ = ["FoundManifest", "find_manifest", "has_manifest"]


class Layout(NamedTuple):
    marker: str
    """The file whose presence says a folder has this layout."""
    read: Callable[[Path, str | None], FoundManifest]


def _native(folder: Path, _name: str | None) -> FoundManifest:
    return FoundManifest(saved.check_saved(folder, load_manifest(folder)), MANIFEST_NAME)


def _pipeline(folder: Path, _name: str | None) -> FoundManifest:
    return FoundManifest(validate_manifest(manifest_data(folder), PIPELINE_NAME), PIPELINE_NAME)


def _algorithmia(folder: Path, name: str | None) -> FoundManifest:
    return algorithmia.derive_manifest(folder, name=name)


LAYOUTS = (
    Layout(MANIFEST_NAME, _native),
    Layout(PIPELINE_NAME, _pipeline),
    Layout(algorithmia.CONF_NAME, _algorithmia),
)


def has_manifest(folder: Path) -> bool:
    """Whether ``folder`` holds the marker file of any layout."""
    try:
        return any((folder / layout.marker).is_file() for layout in LAYOUTS)
    except OSError:  # a name too long for the file system, say: no model folder here
        return False


def find_manifest(folder: Path, *, name: str | None = None) -> FoundManifest:
    """The manifest of the model in ``folder``: ``algora.toml``, else Algorithmia's layout,
    else the one a saved model in it implies.

    ``name`` is the name the model is published under, when known (a repository's model, a
    publish request's path); an ``algora.toml`` must agree with it, which the caller checks.
    Raises :class:`~algora.errors.InvalidManifest` (400) saying what is wrong or missing.
    """
    for layout in LAYOUTS:
        try:
            present = (folder / layout.marker).is_file()
        except OSError as error:  # ENAMETOOLONG and the like: is_file raises rather than says no
            raise InvalidManifest(
                f"cannot read the model folder '{str(folder)[:200]}': {error.strerror}"
            ) from None
        if present:
            return layout.read(folder, name)
    return saved.derive_manifest(folder, name=name)
