"""Check the JavaScript model with the local node: `python -m pytest test_model.py`."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def apply(value):
    script = (
        "require('./model.js').apply(JSON.parse(process.argv[1]))"
        ".then((r) => process.stdout.write(JSON.stringify({ok: r})),"
        " (e) => process.stdout.write(JSON.stringify({error: e.error_type})))"
    )
    done = subprocess.run(
        ["node", "-e", script, json.dumps(value)], cwd=HERE, capture_output=True, check=True
    )
    return json.loads(done.stdout.decode().splitlines()[-1])


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_greets() -> None:
    assert apply("world") == {"ok": "Hello world"}
    assert apply({"name": "Ada"})["ok"]["greeting"] == "Hello Ada"
    assert apply(5) == {"error": "InputError"}
