"""docs/migrating-from-algorithmia.md, step by step, against a real server.

An Algorithmia user moves examples/algorithmia-migration: the WordFreq ADK algorithm (its
repository exactly as Algorithmia had it, no Algora file added), the hosted data it reads at
load, and a client application that uploads a text and calls the algorithm. Only the API
address and the key change; the test fails if any file of the example would have to.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import Algorithmia
import pytest

from algora.testing import RunningServer

from ..helpers import REPO, finished_build, git

EXAMPLE = REPO / "examples" / "algorithmia-migration"
ALGORA = str(Path(sys.executable).with_name("algora"))

pytestmark = pytest.mark.slow


def algora(*args: str, key: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ALGORA_URL": url, "ALGORA_KEY": key, "NO_COLOR": "1"}
    done = subprocess.run(
        [ALGORA, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, f"algora {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def test_an_algorithmia_user_moves_an_algorithm_its_data_and_its_app(
    server: RunningServer, tmp_path: Path
) -> None:
    # 1. The platform's admin gives the user the name they had on Algorithmia, and a key.
    made = algora("users", "create", "demo", key=server.key, url=server.url)
    demo_key = made.stdout.strip().splitlines()[-1]
    assert demo_key.startswith("sim")
    client = Algorithmia.client(demo_key, server.url)
    assert client.username() == "demo"

    # 2. Hosted data, copied from the Algorithmia export with the client the user already has.
    stopwords = client.dir("data://.my/wordfreq")
    stopwords.create()
    client.file("data://.my/wordfreq/stopwords.txt").putFile(
        str(EXAMPLE / "data" / "stopwords.txt")
    )

    # 3. The algorithm: create it, push its repository unchanged, build, publish.
    algo = client.algo("demo/WordFreq")
    algo.create(
        details={"summary": "word counts", "label": "WordFreq"},
        settings={"language": "python3", "source_visibility": "closed", "license": "apl"},
    )
    work = tmp_path / "WordFreq"
    shutil.copytree(EXAMPLE / "WordFreq", work)
    host = server.url.removeprefix("http://")
    git("init", "-q", "-b", "master", str(work), cwd=tmp_path)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "WordFreq as it was on Algorithmia", cwd=work)
    git("remote", "add", "algora", f"http://demo:{demo_key}@{host}/git/demo/WordFreq.git", cwd=work)
    git("push", "-q", "--force", "algora", "master", cwd=work)
    commit = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    build = finished_build(algo, commit)
    assert build["status"] == "succeeded", algo.get_build_logs(build["build_id"])["logs"]
    published = algo.publish(
        version_info={"version_type": "minor", "release_notes": "moved from Algorithmia"}
    )
    version = published["version_info"]["semantic_version"]

    # 4. The client application runs as it did, pointed at Algora.
    env = {
        **os.environ,
        "ALGORITHMIA_API": server.url,
        "ALGORITHMIA_API_KEY": demo_key,
    }
    app = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE / "app" / "word_report.py"),
            str(EXAMPLE / "data" / "speech.txt"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert app.returncode == 0, app.stdout + app.stderr
    assert "because: 4" in app.stdout, app.stdout
    assert client.file("data://demo/texts/speech.txt").exists()

    # The version spec the app names (1.0.x on Algorithmia) resolves to what was published.
    assert client.algo(f"demo/WordFreq/{version}").pipe("the cat and the hat").result == {
        "total": 2,
        "top": [["cat", 1], ["hat", 1]],
    }
