"""Gateway side of the workers: specs, backends, pools and the pool manager.

Only ``algora.workers.ray`` may import Ray; nothing here imports it.
"""

from __future__ import annotations

from algora.workers.backend import WorkerBackend, WorkerHandle
from algora.workers.local import LocalBackend
from algora.workers.manager import PoolManager
from algora.workers.pool import Pool, PoolStats
from algora.workers.spec import CallRequest, CallResult, ModelInfo, WorkerSpec

__all__ = [
    "CallRequest",
    "CallResult",
    "LocalBackend",
    "ModelInfo",
    "Pool",
    "PoolManager",
    "PoolStats",
    "WorkerBackend",
    "WorkerHandle",
    "WorkerSpec",
]
