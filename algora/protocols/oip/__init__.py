"""The Open Inference Protocol (V2, KServe's and Triton's) over REST under ``/v2``, with the
binary tensor data extension: :mod:`.routes` serves it, :mod:`.wire` reads and writes its
messages."""

from __future__ import annotations

from algora.protocols.oip.routes import router

__all__ = ["router"]
