"""A saved model published with no code: a folder (or one file) holding a model as its
framework saved it, served by the runtime for its format (``algora.runtime.saved``).

A folder without ``algora.toml`` or Algorithmia's layout is searched for a file whose content
is a saved model (:mod:`.formats`); the manifest it implies (:func:`derive_manifest`) is:

- **name**: the name the model is published under, else the folder's name in lowercase;
- **saved**: the model file and its format, detected from the content;
- **environment**: ``requirements.txt`` beside the model when there is one (say, to pin the
  scikit-learn version a pickle was made with), else the format's own requirements
  (:func:`requirements_for`); an MLflow model's are those MLflow recorded in its folder.

An ``algora.toml`` may name the file itself (``[saved] file = "model.onnx"``) to set anything
else a manifest sets; its format is detected all the same (:func:`check_saved`).

Only the files' bytes are read: nothing is unpickled or imported.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from algora.errors import InvalidManifest, UnsupportedModelFormat
from algora.modelfolder.formats import (
    FOLDER_FORMATS,
    FORMATS,
    detect,
    inside,
    onnx_external_files,
)
from algora.modelfolder.found import FoundManifest
from algora.modelfolder.manifest import (
    MANIFEST_NAME,
    NAME_PATTERN,
    Manifest,
    SavedSection,
    validate_manifest,
)
from algora.modelfolder.packing import EXCLUDED_NAMES
from algora.modelfolder.pickled import recorded_sklearn_version
from algora.modelfolder.structures import mlflow_pip_requirements

__all__ = [
    "SUPPORTED",
    "as_folder",
    "check_saved",
    "derive_manifest",
    "find_model_files",
    "requirements_for",
    "saved_lineage",
]

SUPPORTED = ", ".join(f"{f.title} [{f.name}]" for f in FORMATS.values())
"""The formats a saved model may have, as error messages list them."""

_MAX_FILES = 1000
_PICKLED = ("pickle", "joblib")
_ORIGIN = "a saved model"


@contextmanager
def as_folder(path: Path) -> Iterator[Path]:
    """The model folder to publish for ``path``: the folder itself, or for a single file a
    temporary folder named after the file's stem (the model's name) holding only that file."""
    if not path.is_file():
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="algora-publish-") as scratch:
        folder = Path(scratch) / path.stem
        folder.mkdir()
        try:
            os.link(path, folder / path.name)
        except OSError:  # another file system, or links not allowed: copy it
            shutil.copyfile(path, folder / path.name)
        yield folder


def find_model_files(folder: Path) -> list[tuple[str, str]]:
    """Each ``(relative path, format)`` in ``folder`` whose content is a saved model."""
    found: list[tuple[str, str]] = []
    seen = 0
    for base, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_NAMES and d[:1] != ".")
        for filename in sorted(filenames):
            path = Path(base) / filename
            if filename[:1] == "." or path.is_symlink() or not path.is_file():
                continue
            seen += 1
            if seen > _MAX_FILES:
                return found
            kind = detect(path)
            if kind is not None:
                found.append((path.relative_to(folder).as_posix(), kind))
    return _without_parts(found)


def _without_parts(found: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``found`` less the files inside a folder-format model's folder (an MLflow model's
    pickle, say): they are its parts, not models of their own."""
    folders = [posixpath.dirname(path) for path, kind in found if kind in FOLDER_FORMATS]
    return [
        (path, kind)
        for path, kind in found
        if kind in FOLDER_FORMATS or not any(f == "" or path.startswith(f + "/") for f in folders)
    ]


def derive_manifest(folder: Path, *, name: str | None = None) -> FoundManifest:
    """The manifest a folder holding one saved model implies (see the module docstring).

    Raises :class:`~algora.errors.UnsupportedModelFormat` when the folder holds none, and
    :class:`~algora.errors.InvalidManifest` when it holds several.
    """
    models = find_model_files(folder)
    if not models:
        raise UnsupportedModelFormat(
            f"the model folder has neither an {MANIFEST_NAME} nor Algorithmia's "
            f"algorithmia.conf, and no saved model in a format Algora recognises ({SUPPORTED}): "
            f"publish such a file, run 'algora init NAME' to create an {MANIFEST_NAME} for a "
            "model in code, or publish an Algorithmia algorithm's repository as it is",
            details={"formats": list(FORMATS)},
        )
    if len(models) > 1:
        listed = ", ".join(f"{path} ({kind})" for path, kind in models[:10])
        raise InvalidManifest(
            f"the model folder holds several saved models ({listed}): publish one, or name it "
            f'in an {MANIFEST_NAME} ([saved] file = "...")'
        )
    file, kind = models[0]
    model_name = name if name is not None else _folder_name(folder)
    manifest = validate_manifest(
        {"model": {"name": model_name}, "saved": {"file": file, "format": kind}},
        f"the manifest derived from the saved model {file}",
    )
    check_saved(folder, manifest)
    title = FORMATS[kind].title
    notes = [f"no {MANIFEST_NAME}: serving {file}, a saved model in {title} format"]
    version = _pickled_version(folder, file, kind)
    if version is not None:
        notes.append(f"the pickle records scikit-learn {version}: its environment pins it")
    return FoundManifest(manifest, _ORIGIN, tuple(notes))


def check_saved(folder: Path, manifest: Manifest) -> Manifest:
    """``manifest`` with its saved model's format detected, once the file is checked: inside
    the folder, a format Algora serves (agreeing with one the manifest wrote), and for ONNX
    every external data file inside the folder too. A manifest without ``[saved]`` is
    returned as it is."""
    saved = manifest.saved
    if saved is None:
        return manifest
    root = folder.resolve()
    path = (folder / saved.file).resolve()
    if not inside(saved.file) or not path.is_relative_to(root) or not path.is_file():
        raise InvalidManifest(
            f"saved.file names '{saved.file}', which is not a file inside the model folder"
        )
    kind = detect(path)
    if kind is None:
        raise UnsupportedModelFormat(
            f"'{saved.file}' is not a saved model in a format Algora recognises: {SUPPORTED}",
            details={"formats": list(FORMATS), "file": saved.file},
        )
    if saved.format is not None and saved.format != kind:
        raise InvalidManifest(
            f"saved.format says '{saved.format}' but '{saved.file}' holds a {kind} model"
        )
    if kind == "onnx":
        _check_external_data(root, path, saved.file)
    _check_model_class(root, saved, kind)
    checked = SavedSection(file=saved.file, format=kind, model_class=saved.model_class)
    return manifest.model_copy(update={"saved": checked})


def _check_model_class(root: Path, saved: SavedSection, kind: str) -> None:
    """A ``state_dict`` holds weights only: the manifest names the class they fit, in code the
    folder holds; no other format takes a class."""
    if kind != "torch-state-dict":
        if saved.model_class is not None:
            raise InvalidManifest(
                f"saved.class is only for a PyTorch state_dict; '{saved.file}' is a {kind} model"
            )
        return
    if saved.model_class is None:
        raise InvalidManifest(
            f"'{saved.file}' is a PyTorch state_dict: weights without the model's code. Put the "
            f"class in the folder (say model.py) and name it in an {MANIFEST_NAME}: "
            f'[saved] file = "{saved.file}" and class = "model:Net" (constructed with no '
            "arguments); or save the model with torch.jit.save (TorchScript), which needs no code"
        )
    module = saved.model_class.partition(":")[0].replace(".", "/")
    if not ((root / f"{module}.py").is_file() or (root / module / "__init__.py").is_file()):
        raise InvalidManifest(
            f"saved.class names '{saved.model_class}', but the model folder has no {module}.py "
            "(nor a package of that name): add the module that defines the class"
        )


def requirements_for(manifest: Manifest, folder: Path | None = None) -> list[str]:
    """The requirements of a saved model's environment when the folder names none: the
    format's own, with a pickle's scikit-learn pinned to the version it records (when the
    model ``folder`` is given and the pickle says)."""
    saved = manifest.saved
    if saved is None or saved.format not in FORMATS:
        return []
    if saved.format == "mlflow" and folder is not None:
        own = mlflow_pip_requirements((folder / saved.file).parent)
        if own is not None:  # the environment MLflow recorded when the model was saved
            # Here, not at the top: the policy needs packaging, a server dependency, and the
            # SDK and CLI import this module (only publishing, on the server, gets here).
            from algora.environments.requirements import parse_requirements

            return parse_requirements(own)
    requirements = list(FORMATS[saved.format].requirements)
    version = _pickled_version(folder, saved.file, saved.format) if folder is not None else None
    if version is not None:
        requirements = [
            f"scikit-learn=={version}" if r.startswith("scikit-learn") else r for r in requirements
        ]
    return requirements


def _pickled_version(folder: Path, file: str, model_format: str | None) -> str | None:
    if model_format not in _PICKLED:
        return None
    return recorded_sklearn_version(folder / file)


def saved_lineage(manifest: Manifest) -> dict[str, Any]:
    """What a version records of its saved model (``lineage["saved_model"]``)."""
    saved = manifest.saved
    if saved is None or saved.format not in FORMATS:
        return {}
    model_format = FORMATS[saved.format]
    return {"saved_model": {"file": saved.file, "format": saved.format, "safe": model_format.safe}}


def _check_external_data(root: Path, path: Path, shown: str) -> None:
    try:
        locations = onnx_external_files(path)
    except ValueError:
        raise InvalidManifest(
            f"the ONNX model {shown} has an initializer that cannot be read: save it again "
            "with the onnx package"
        ) from None
    for location in locations:
        target = (path.parent / location).resolve()
        if not inside(location) or not target.is_relative_to(root) or not target.is_file():
            raise InvalidManifest(
                f"the ONNX model {shown} keeps tensor data in '{location[:200]}', which is not "
                "a file inside the model folder: keep external data files beside the model"
            )


def _folder_name(folder: Path) -> str:
    name = re.sub(r"[^a-z0-9_-]+", "-", folder.resolve().name.lower()).strip("-_")[:64]
    if not NAME_PATTERN.match(name):
        raise InvalidManifest(
            f"the model name cannot come from the folder name '{folder.name[:80]}': rename it "
            f"(1-64 letters, digits, '-' or '_'), or write an {MANIFEST_NAME}"
        )
    return name
