"""Saved-model formats recognised by their structure: PyTorch's zip archives, and a
sentence-embedding model in Hugging Face's layout.

``torch.jit.save`` and ``torch.save`` both write a zip whose entries all sit under one folder
(the archive's name) and hold a pickle, ``data.pkl``, and a ``version``. TorchScript adds the
model's compiled code (``code/``) and ``constants.pkl``; a ``state_dict`` has no code, and its
pickle names only ``collections.OrderedDict`` and torch's own tensor rebuilders (a whole
pickled ``nn.Module`` names its class, and is not recognised). Nothing is unpickled: the
pickle's opcodes are only decoded, with :mod:`pickletools`.

A sentence-transformers model is a folder whose ``modules.json`` lists its modules, each of a
``sentence_transformers`` class (loading imports the classes named there: any other is code),
the first a ``Transformer`` whose folder holds ``config.json`` and ``model.safetensors``.
``modules.json`` is the file that stands for the folder.

An MLflow model is a folder whose ``MLmodel`` (YAML) has a ``python_function`` flavor with a
``loader_module``; ``MLmodel`` stands for the folder. Its lines are read as text: the standard
library has no YAML parser, and these keys always sit at the same depths. Standard library
only.
"""

from __future__ import annotations

import json
import pickletools
import posixpath
import re
import zipfile
from pathlib import Path
from typing import Any

__all__ = [
    "is_mlflow_model",
    "is_sentence_transformers",
    "mlflow_pip_requirements",
    "small_json",
    "torch_archive_kind",
]

_MAX_ENTRIES = 100_000
_MAX_STATE_PICKLE = 64 * 1024 * 1024
_STATE_GLOBALS = ("collections.OrderedDict",)


def small_json(path: Path, most: int) -> Any:
    """``path``'s JSON value; None when the file is over ``most`` bytes or not JSON."""
    if path.stat().st_size > most:
        return None
    try:
        return json.loads(path.read_bytes())
    except (ValueError, RecursionError):
        return None


def torch_archive_kind(archive: zipfile.ZipFile) -> str | None:
    """``torchscript`` or ``torch-state-dict`` when ``archive`` is one, else None."""
    names = archive.namelist()
    if not names or len(names) > _MAX_ENTRIES:
        return None
    prefix = names[0].partition("/")[0] + "/"
    if prefix == "/" or not all(name.startswith(prefix) for name in names):
        return None
    inner = {name[len(prefix) :] for name in names}
    if "data.pkl" not in inner or "version" not in inner:
        return None
    has_code = any(name.startswith("code/") for name in inner)
    info = archive.getinfo(prefix + "data.pkl")
    with archive.open(info) as pickled:
        if pickled.read(1) != b"\x80":
            return None
    if has_code:
        return "torchscript" if "constants.pkl" in inner else None
    if info.file_size > _MAX_STATE_PICKLE:
        return None
    return "torch-state-dict" if _names_only_tensors(archive.read(info)) else None


def _names_only_tensors(data: bytes) -> bool:
    """Whether the pickle ``data`` is whole and names only an OrderedDict and torch's own."""
    strings: list[str] = []
    named = False
    try:
        for opcode, arg, _position in pickletools.genops(data):
            name: str | None = None
            if opcode.name == "GLOBAL" and isinstance(arg, str):
                module, _, attr = arg.partition(" ")
                name = f"{module}.{attr}"
            elif opcode.name == "STACK_GLOBAL":
                name = ".".join(strings[-2:]) if len(strings) >= 2 else ""
            elif opcode.name in ("INST", "OBJ", "NEWOBJ_EX"):
                return False
            elif isinstance(arg, str):
                strings.append(arg)
            if name is not None:
                if not (name in _STATE_GLOBALS or name.startswith("torch.")):
                    return False
                named = True
            if opcode.name == "STOP":
                return named
    except (ValueError, EOFError):
        return False
    return False


_MAX_MODULES_JSON = 1024 * 1024
_ST_PREFIX = "sentence_transformers."


def is_sentence_transformers(path: Path) -> bool:
    """Whether ``path`` is the ``modules.json`` of a sentence-transformers model folder whose
    weights are safetensors."""
    modules = small_json(path, _MAX_MODULES_JSON)
    if not isinstance(modules, list) or not modules:
        return False
    for module in modules:
        if not (
            isinstance(module, dict)
            and isinstance(module.get("type"), str)
            and module["type"].startswith(_ST_PREFIX)
            and isinstance(module.get("path"), str)
        ):
            return False
    first = modules[0]
    if not first["type"].endswith(".Transformer"):
        return False
    where = posixpath.normpath(first["path"] or ".")
    if where.startswith(("/", "..")):
        return False
    folder = path.parent / where
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


_MAX_MLMODEL = 1024 * 1024
_LOADER = re.compile(r"^    loader_module: +[A-Za-z_][\w.]*\s*$")


def is_mlflow_model(path: Path) -> bool:
    """Whether ``path`` is an MLflow ``MLmodel`` file with a pyfunc (``python_function``)
    flavor that names its loader module."""
    if path.stat().st_size > _MAX_MLMODEL:
        return False
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return False
    section = flavor = ""
    for line in lines:
        if line[:1] not in ("", " ", "-", "#"):
            section, flavor = line.partition(":")[0], ""
        elif section == "flavors" and line.startswith("  ") and line[2:3] not in (" ", ""):
            flavor = line.strip().rstrip(":")
        elif section == "flavors" and flavor == "python_function" and _LOADER.match(line):
            return True
    return False


def mlflow_pip_requirements(folder: Path) -> str | None:
    """An MLflow model folder's own requirements, as text: its ``requirements.txt``, else the
    ``pip`` list of its ``conda.yaml``; None when it has neither."""
    requirements = folder / "requirements.txt"
    if requirements.is_file():
        return requirements.read_text(encoding="utf-8")
    conda = folder / "conda.yaml"
    if not conda.is_file():
        return None
    pip: list[str] = []
    depth: int | None = None
    for line in conda.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if depth is None:
            if stripped in ("- pip:", "-   pip:"):
                depth = indent
        elif stripped.startswith("- ") and indent > depth:
            pip.append(stripped[2:].strip().strip("'\""))
        elif stripped:
            break
    return "\n".join(pip) + "\n" if pip else None
