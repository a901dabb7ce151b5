"""Saved-model formats recognised by their structure: PyTorch's zip archives.

``torch.jit.save`` and ``torch.save`` both write a zip whose entries all sit under one folder
(the archive's name) and hold a pickle, ``data.pkl``, and a ``version``. TorchScript adds the
model's compiled code (``code/``) and ``constants.pkl``; a ``state_dict`` has no code, and its
pickle names only ``collections.OrderedDict`` and torch's own tensor rebuilders (a whole
pickled ``nn.Module`` names its class, and is not recognised). Nothing is unpickled: the
pickle's opcodes are only decoded, with :mod:`pickletools`. Standard library only.
"""

from __future__ import annotations

import pickletools
import zipfile

__all__ = ["torch_archive_kind"]

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
