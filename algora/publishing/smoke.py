"""The publish smoke test: load the model in one worker, run its example input, stop."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import get_args

from algora.errors import InvalidInput
from algora.workers.backend import WorkerBackend
from algora.workers.pool import Pool
from algora.workers.spec import CallRequest, CallResult, ContentType, ModelInfo, WorkerSpec

__all__ = ["smoke_test"]


async def smoke_test(
    spec: WorkerSpec,
    backend: WorkerBackend,
    data_dir: Path,
    example: tuple[str, bytes] | None,
    timeout: float,
    origin: object | None = None,
) -> tuple[ModelInfo, CallResult | None]:
    """Start a one-replica pool, call ``example`` (content type, payload) if given, stop it.

    ``origin``: whom the example call acts for, for the worker's channel (``spec.channel``).

    Raises ModelLoadFailed when the model does not load, and the call's own error (ModelError,
    CallTimeout, WorkerDied...) when the example fails.
    """
    content_type: ContentType | None = None
    if example is not None:
        for known in get_args(ContentType):
            if example[0] == known:
                content_type = known
        if content_type is None:
            raise InvalidInput(f"unknown example content type {example[0]!r}")
    pool = Pool(dataclasses.replace(spec, replicas=1), backend, data_dir)
    info = await pool.start()
    try:
        if example is None or content_type is None:
            return info, None
        request = CallRequest("smoke-test", content_type, example[1], timeout, origin=origin)
        return info, await pool.call(request)
    finally:
        await pool.stop()
