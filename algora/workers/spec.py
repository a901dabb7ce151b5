"""Typed values that cross the pool's interface: what to start, what it is, what a call carries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from algora.workers.channel import ChannelOpener

__all__ = [
    "DEFAULT_MAX_BATCH",
    "CallRequest",
    "CallResult",
    "ContentType",
    "ModelInfo",
    "WorkerSpec",
]

DEFAULT_MAX_BATCH = 32
"""Most calls in one batch to a model with ``predict_batch`` when its manifest sets none."""

ContentType = Literal["json", "text", "binary", "tensors"]
"""Content types of a call's payload; a result may also be ``"void"`` (the model returned None)."""


@dataclass(frozen=True)
class WorkerSpec:
    """How to start the workers of one model version."""

    python: Path
    """The environment's interpreter (for ``runtime = "node"``: the ``node`` executable)."""
    source_dir: Path
    """Directory holding the model's code; the worker's working directory and first on sys.path."""
    entrypoint: str
    """``module:attr`` of the model function or class."""
    log_path: Path
    """File the workers' stderr (and anything the model writes to fd 1) is appended to."""
    replicas: int = 1
    """Replicas started with the pool."""
    runtime: Literal["python", "node"] = "python"
    """Which worker serves the model: ``algora/runtime`` or ``algora/runtime_node/worker.js``."""
    node_modules: Path | None = None
    """A Node model's installed dependencies (its environment's ``node_modules``, on
    ``NODE_PATH``); None: it has none."""
    min_replicas: int | None = None
    """The fewest replicas kept while the pool runs (0: the pool itself stops after
    ``scale_down_after`` idle seconds); None: ``replicas``, and the platform's idle timeout."""
    max_replicas: int | None = None
    """The most replicas the autoscaler may run; None: ``replicas``."""
    target_in_flight: float = 1.0
    """Calls each replica should hold (waiting or running) before the autoscaler adds one."""
    scale_down_after: float = 30.0
    """Idle seconds after which a replica above the floor (or a pool at ``min_replicas = 0``)
    is stopped."""
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Extra environment variables for the workers (the gateway's own are never passed). They
    may hold the model's secrets: never logged, and left out of the spec's repr."""
    start_timeout: float = 120.0
    """Seconds a worker may take to import and load the model."""
    max_queue: int = 1000
    """Calls that may wait for a worker before new ones are refused with Overloaded."""
    max_batch: int = DEFAULT_MAX_BATCH
    """Most calls sent in one ``call_batch`` to a model with ``predict_batch``."""
    loop_batches: bool = False
    """Send batches to a model without ``predict_batch`` too (its worker loops ``predict``)."""
    check_inputs: bool = True
    """Whether the worker refuses inputs its input schema does not take (``--no-input-check``)."""
    max_wait: float = 0.0
    """Seconds a batch may wait after its first call for more calls to fill it."""
    target_p99: float | None = None
    """A latency target (seconds): the batch size is then chosen below ``max_batch`` by
    ``algora.workers.batching``; None: up to ``max_batch`` of what is waiting."""
    network: bool = False
    """Whether a sandboxed worker may reach the network (else only its own loopback)."""
    memory_bytes: int | None = None
    """Data-segment limit of each worker (RLIMIT_DATA); None: no limit."""
    cpu_seconds: float | None = None
    """CPU seconds each call (or batch) may use (RLIMIT_CPU, re-armed per call); None: no limit."""
    sandbox: bool = False
    """Run the workers under bubblewrap when it works here (``algora.workers.sandbox``). The
    platform always sets it from its settings; the default is off because a sandboxed worker
    lives in its own PID namespace, so what it reports as its pid is not the host's."""
    channel: ChannelOpener | None = field(default=None, repr=False, compare=False)
    """Opens each worker's channel to the gateway, through which its model calls models and
    reads data (``algora.workers.channel``); None: the model has no way to the gateway."""
    gateway_folder: Path | None = None
    """The folder of this worker's gateway socket: set by the pool, per worker, from its
    channel (the backend makes it reachable, and only it, from inside the sandbox)."""

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError("replicas must be at least 1")
        if not 0 <= (self.min_replicas or 0) <= self.replicas <= (self.max_replicas or 10**6):
            raise ValueError("min_replicas <= replicas <= max_replicas must hold")
        if self.target_in_flight <= 0 or self.scale_down_after <= 0:
            raise ValueError("target_in_flight and scale_down_after must be positive")
        if self.max_queue < 0 or self.max_batch < 1 or self.max_wait < 0:
            raise ValueError("max_queue and max_wait must be >= 0 and max_batch >= 1")
        if self.target_p99 is not None and self.target_p99 <= 0:
            raise ValueError("target_p99 must be positive when set")
        if self.start_timeout <= 0:
            raise ValueError("start_timeout must be positive")
        if (self.memory_bytes is not None and self.memory_bytes <= 0) or (
            self.cpu_seconds is not None and self.cpu_seconds <= 0
        ):
            raise ValueError("memory_bytes and cpu_seconds must be positive when set")


@dataclass(frozen=True)
class ModelInfo:
    """What a worker reported once its model was loaded."""

    kind: str
    """``"function"`` or ``"class"``."""
    batch: bool
    """Whether the model has ``predict_batch``."""
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    load_seconds: float

    @classmethod
    def from_ready(cls, message: Mapping[str, Any]) -> ModelInfo:
        model = message.get("model")
        model = model if isinstance(model, Mapping) else {}
        input_schema = model.get("input_schema")
        output_schema = model.get("output_schema")
        return cls(
            kind=str(model.get("kind", "function")),
            batch=bool(model.get("batch", False)),
            input_schema=dict(input_schema) if isinstance(input_schema, Mapping) else {},
            output_schema=dict(output_schema) if isinstance(output_schema, Mapping) else {},
            load_seconds=float(message.get("load_seconds", 0.0)),
        )


@dataclass(frozen=True)
class CallRequest:
    """One call for a pool: the payload in its content type, and the seconds it may take."""

    request_id: str
    content_type: ContentType
    payload: bytes
    timeout: float
    origin: object | None = field(default=None, repr=False, compare=False)
    """Whom the call acts for, opaque to the pool: handed to the worker's channel while the
    worker serves the call (``algora.workers.channel``)."""
    fields: Mapping[str, Any] = field(default_factory=dict)
    """More fields of the call's frame header, which its content type needs (``tensors``:
    ``tensors``, and optionally ``input_form`` and ``output_names``; docs/protocol.md)."""

    def header_fields(self) -> dict[str, Any]:
        """What a ``call`` frame's header, or a ``call_batch`` item, says of this call."""
        return {"id": self.request_id, "content_type": self.content_type, **self.fields}


@dataclass(frozen=True)
class CallResult:
    """A model's answer: ``content_type`` is json, text, binary, tensors or void (empty
    payload)."""

    content_type: str
    payload: bytes
    stdout: str
    duration: float
    """Seconds the worker spent on the call (model code and result encoding)."""
    tensors: list[dict[str, Any]] | None = None
    """The tensors' descriptors, in payload order, when ``content_type`` is ``tensors``."""
    cpu: float = 0.0
    """CPU seconds the worker process used for the call (a batch's, shared by its calls)."""
