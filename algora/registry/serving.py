"""How a version's manifest and the platform's settings become the spec of its workers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from algora.modelfolder.manifest import Manifest
from algora.settings import Settings
from algora.workers.sandbox import use_sandbox
from algora.workers.spec import DEFAULT_MAX_BATCH, WorkerSpec

__all__ = ["with_secrets", "worker_spec"]


def worker_spec(
    settings: Settings,
    manifest: Manifest,
    *,
    python: Path,
    source_dir: Path,
    log_path: Path,
    replicas: int | None = None,
) -> WorkerSpec:
    """The one place serving settings meet platform limits (smoke tests and pools alike).

    ``python`` is the environment's interpreter; a Node model's environment has ``bin/node``
    beside it, and its packages in ``node_modules`` (``algora.environments.node``).
    """
    serving = manifest.serving
    node = manifest.model.runtime == "node"
    modules = python.parent.parent / "node_modules"
    return WorkerSpec(
        python=python.with_name("node") if node else python,
        runtime="node" if node else "python",  # a pipeline has no workers: never asked
        node_modules=modules if node and modules.is_dir() else None,
        source_dir=source_dir,
        entrypoint=manifest.worker_entrypoint,
        log_path=log_path,
        replicas=replicas if replicas is not None else serving.replicas,
        start_timeout=settings.worker_start_timeout,
        network=serving.network,
        memory_bytes=(serving.memory_mb or settings.worker_memory_mb) << 20,
        cpu_seconds=serving.cpu_seconds or settings.worker_cpu_seconds,
        sandbox=use_sandbox(settings.sandbox),
        # A fixed count (the smoke test's one replica) is not autoscaled.
        min_replicas=serving.min_replicas if replicas is None else None,
        max_replicas=serving.max_replicas if replicas is None else None,
        target_in_flight=serving.target_in_flight,
        scale_down_after=serving.scale_down_after_s,
        max_batch=serving.max_batch_size or DEFAULT_MAX_BATCH,
        loop_batches=(serving.max_batch_size or 1) > 1,
        max_wait=serving.max_wait_ms / 1000,
        target_p99=serving.target_p99_ms / 1000 if serving.target_p99_ms else None,
        check_inputs=serving.check_inputs,
    )


def with_secrets(spec: WorkerSpec, secrets: Mapping[str, str]) -> WorkerSpec:
    """``spec`` with its model's secrets in the workers' environment (served and smoke-tested
    workers alike); the spec's own variables win over a secret of the same name."""
    return replace(spec, env={**secrets, **spec.env}) if secrets else spec
