"""Uploads cut off by a crash leave no temp file: a sweep removes those nobody holds, and never
one an upload in progress (in this process or another) still writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from algora.store.collections import CollectionStore, sweep_interrupted_uploads

HOLD = """
import sys, time
from pathlib import Path
from algora.store.collections import CollectionStore
store = CollectionStore(Path(sys.argv[1]), 1 << 20)
upload = store.start_upload("ann", "photos", ("held.bin",))
upload.write(b"half")
print("writing", flush=True)
time.sleep(60)
"""


def test_a_sweep_removes_only_what_no_live_upload_holds(tmp_path: Path) -> None:
    store = CollectionStore(tmp_path, 1 << 20)
    store.path("ann", "photos").mkdir(parents=True)
    live = store.start_upload("ann", "photos", ("live.bin",))
    live.write(b"in progress")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "writing"
        assert sweep_interrupted_uploads(tmp_path) == 0  # both are being written
        holder.kill()  # a crash mid-upload: its lock goes with it
        holder.wait()
        assert sweep_interrupted_uploads(tmp_path) == 1
        assert live.commit() == len(b"in progress")  # the live one was left alone
        folder = store.path("ann", "photos")
        assert sorted(p.name for p in folder.iterdir()) == ["live.bin"]
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
