"""The Open Inference Protocol (V2, KServe's and Triton's): over REST under ``/v2``, with the
binary tensor data extension (:mod:`.routes`; :mod:`.wire` reads and writes its messages), and
over gRPC on its own port (:mod:`.grpc_service`); :mod:`.service` is what both share."""

from __future__ import annotations

from algora.protocols.oip.grpc_service import GrpcServer
from algora.protocols.oip.routes import router

__all__ = ["GrpcServer", "router"]
