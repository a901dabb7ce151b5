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
``modules.json`` is the file that stands for the folder. Standard library only.
"""

from __future__ import annotations

import json
import pickletools
import posixpath
import zipfile
from pathlib import Path

__all__ = ["is_sentence_transformers", "torch_archive_kind"]

_MAX_ENTRIES = 100_000
_MAX_STATE_PICKLE = 64 * 1024 * 1024
_STATE_GLOBALS = ("collections.OrderedDict",)


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
    if path.stat().st_size > _MAX_MODULES_JSON:
        return False
    try:
        modules = json.loads(path.read_bytes())
    except (ValueError, RecursionError):
        return False
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
