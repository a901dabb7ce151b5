"""The node side of the Ray backend without Ray: a node that does not see the gateway's folders
is shipped the version's files and builds its environment from the lock, then serves from
there, and a node that sees them serves from the gateway's own."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path

from algora.environments.builder import EnvironmentBuilder
from algora.modelfolder.packing import pack_directory
from algora.runtime.frames import decode_frame, encode_frame
from algora.workers.ray_actor import NEEDS_FILES, BuildConfig, NodeWorker, place
from algora.workers.spec import WorkerSpec

from ..helpers import worker_spec

HELLO = 'def apply(input: str) -> str:\n    return "Hello " + input\n'
INDEX = "https://pypi.org/simple"  # never reached: the lock is empty


def _gateway_spec(gateway: Path) -> WorkerSpec:
    env = EnvironmentBuilder(gateway / "envs", sys.executable, INDEX).ensure("", lambda _: None)
    spec = worker_spec(gateway, HELLO, name="f" * 64)
    return WorkerSpec(
        python=env.python,
        source_dir=spec.source_dir,
        entrypoint=spec.entrypoint,
        log_path=spec.log_path,
    )


def _call(spec: WorkerSpec, data_dir: Path, files: bytes | None) -> tuple[str, object]:
    async def main() -> tuple[str, object]:
        node = NodeWorker()
        build = BuildConfig(sys.executable, INDEX, 120.0)
        assert await node.start(spec, str(data_dir), "", files, build) is None
        ready, _ = decode_frame(await node.read())
        call = {"type": "call", "id": "r-1", "content_type": "text"}
        await node.send(encode_frame(call, b"node"))
        result, payload = decode_frame(await node.read())
        node.kill()
        await node.wait()
        return str(ready["type"]), payload.decode() if result["type"] == "result" else result

    return asyncio.run(main())


def test_a_node_without_the_gateways_folders_gets_the_files_and_builds_the_environment(
    tmp_path: Path,
) -> None:
    spec = _gateway_spec(tmp_path / "gateway")
    node = tmp_path / "node"
    moved = WorkerSpec(
        python=tmp_path / "elsewhere" / spec.python.relative_to(tmp_path / "gateway"),
        source_dir=tmp_path / "elsewhere" / "sources" / spec.source_dir.name,
        entrypoint=spec.entrypoint,
        log_path=tmp_path / "elsewhere" / "logs" / "worker.log",
    )
    build = BuildConfig(sys.executable, INDEX, 120.0)
    assert place(moved, node, "", None, build) == NEEDS_FILES

    packed = io.BytesIO()
    pack_directory(spec.source_dir, packed)
    placed = place(moved, node, "", packed.getvalue(), build)
    assert isinstance(placed, WorkerSpec)
    assert placed.source_dir == node / "sources" / spec.source_dir.name
    assert (placed.source_dir / "model.py").read_text() == HELLO
    env_hash = spec.python.parent.parent.name
    assert placed.python == node / "envs" / env_hash / "bin" / "python"
    assert placed.python.exists()
    assert placed.log_path == node / "logs" / "worker.log"


def test_a_node_worker_serves_frames_from_the_gateways_folders_or_its_own(tmp_path: Path) -> None:
    spec = _gateway_spec(tmp_path / "gateway")
    assert _call(spec, tmp_path / "gateway", None) == ("ready", "Hello node")

    moved = WorkerSpec(
        python=tmp_path / "gone" / "envs" / spec.python.parent.parent.name / "bin" / "python",
        source_dir=tmp_path / "gone" / "sources" / spec.source_dir.name,
        entrypoint=spec.entrypoint,
        log_path=tmp_path / "gone" / "logs" / "worker.log",
    )
    packed = io.BytesIO()
    pack_directory(spec.source_dir, packed)
    node_dir = tmp_path / "node"
    node_dir.mkdir()
    assert _call(moved, node_dir, packed.getvalue()) == ("ready", "Hello node")
    assert (node_dir / "sources" / spec.source_dir.name / "model.py").is_file()
