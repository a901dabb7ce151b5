"""Where the special collections of Algorithmia's data API live, on the local file system.

- A model's own collection, ``data://.algo/<owner>/<name>/temp/...`` and ``.../perm/...``:
  ``DATA_DIR/algo-data/<owner>/<name>/``. Files in ``temp`` are removed about a day after
  they were last written (a sweep runs at most once an hour, when something is written there).
- A call tree's scratch space, ``data://.session/...``: ``DATA_DIR/sessions/<session>/files/``,
  removed when the call that opened the session ends.

Both are :class:`~algora.store.collections.CollectionStore` trees, so paths are checked the
same way and nothing is group- or world-readable.
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
import time
from pathlib import Path

from algora.store.collections import CollectionStore

__all__ = [
    "ALGO_FOLDERS",
    "SESSION_COLLECTION",
    "TEMP_MAX_AGE",
    "algo_store",
    "drop_session",
    "new_session",
    "session_store",
    "session_written",
    "sweep_temp",
]

ALGO_FOLDERS = ("temp", "perm")
"""The folders of a model's own collection: removed after a day, and kept."""
TEMP_MAX_AGE = 24 * 3600.0
"""Seconds a file stays in a model's ``temp`` folder after it was last written."""
SESSION_COLLECTION = "files"
_SWEEP_EVERY = 3600.0
_sweeps: dict[Path, float] = {}
_sweep_lock = threading.Lock()


def algo_store(data_dir: Path, max_file_bytes: int) -> CollectionStore:
    """Models' own collections: owner = the model's owner, collection = the model's name."""
    return CollectionStore(data_dir / "algo-data", max_file_bytes)


def session_store(data_dir: Path, max_file_bytes: int) -> CollectionStore:
    """Call trees' scratch spaces: owner = the session, collection = :data:`SESSION_COLLECTION`."""
    return CollectionStore(data_dir / "sessions", max_file_bytes)


def new_session() -> str:
    """A fresh session id: random, so that no caller can choose another's (request ids can be
    chosen by callers)."""
    return secrets.token_hex(16)


def session_written(data_dir: Path, session: str) -> bool:
    """Whether a session has a folder to remove (one ``lstat``: cheap enough for every call)."""
    return os.path.lexists(data_dir / "sessions" / session)


def drop_session(data_dir: Path, session: str) -> None:
    """Remove a session's files, if it wrote any (blocking)."""
    shutil.rmtree(data_dir / "sessions" / session, ignore_errors=True)


def sweep_temp(store: CollectionStore, *, now: float | None = None, force: bool = False) -> int:
    """Remove the files of every model's ``temp`` folder written more than a day ago; return
    how many. Does nothing (0) when this store was swept within the hour, unless ``force``."""
    now = time.time() if now is None else now
    with _sweep_lock:
        last = _sweeps.get(store.root)
        if not force and last is not None and now - last < _SWEEP_EVERY:
            return 0
        _sweeps[store.root] = now
    removed = 0
    for temp in store.root.glob(f"*/*/{ALGO_FOLDERS[0]}"):
        if temp.is_symlink() or not temp.is_dir():
            continue
        for folder, _dirs, files in os.walk(temp):
            for name in files:
                path = Path(folder) / name
                try:
                    if now - path.lstat().st_mtime > TEMP_MAX_AGE:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
    return removed
