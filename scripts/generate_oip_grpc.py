"""Regenerate the Open Inference Protocol's gRPC modules from their proto.

Run from the repository root: ``.venv/bin/python scripts/generate_oip_grpc.py [OUT]`` (grpcio-tools
comes with the ``dev`` extra). It writes ``grpc_predict_v2_pb2.py`` (with its ``.pyi``) beside
``algora/protocols/oip/grpc_predict_v2.proto`` (or under the folder OUT:
tests/protocols/oip/test_grpc_generated.py checks they are current); commit them with the proto.
The module needs at least the protobuf that generated it. No service stub is generated: the server
registers its handlers from the proto's descriptor (``grpc_service.RPCS``).

The messages are built in a descriptor pool of their own, not protobuf's default one: Triton's
and KServe's clients register the same ``inference.*`` names in the default pool, and a process
that imports one of them and Algora's server would otherwise fail on the duplicate symbols.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO = "algora/protocols/oip/grpc_predict_v2.proto"
DEFAULT_POOL = "_descriptor_pool.Default().AddSerializedFile("
OWN_POOL = "_descriptor_pool.DescriptorPool().AddSerializedFile("


def main(out: Path = ROOT) -> int:
    out.mkdir(parents=True, exist_ok=True)
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"--proto_path={ROOT}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            str(ROOT / PROTO),
        ]
    )
    if status:
        return int(status)
    messages = out / PROTO.replace(".proto", "_pb2.py")
    code = messages.read_text(encoding="utf-8")
    if code.count(DEFAULT_POOL) != 1:
        print(f"{messages}: expected one {DEFAULT_POOL!r}; protoc's output changed")
        return 1
    messages.write_text(code.replace(DEFAULT_POOL, OWN_POOL), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT))
