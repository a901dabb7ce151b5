"""What ``GET /metrics`` tells Prometheus: the gateway's requests and model calls, the pools and
their workers, and the gateway's own process.

Labels stay bounded: a request is labelled with its route's audit action (never its path), a
model call with the model's ``owner/name`` and the version's semver only once the call reached a
version (so a stranger's guesses at names add no series), and never with a request id or a
caller. Counting costs a few microseconds a request; everything else (pools, workers' CPU and
memory from ``/proc``, version names from the registry) is read when Prometheus scrapes.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from algora.workers.batching import BATCH_BUCKETS
from algora.workers.manager import PoolManager
from algora.workers.memory import process_tree

__all__ = ["DriftScores", "Metrics", "VersionNames"]

VersionNames = Callable[[str], tuple[str, str]]
"""A pool's key (a version's id) -> (``owner/name``, semver)."""


class _Scored(Protocol):
    @property
    def feature(self) -> str: ...
    @property
    def psi(self) -> float | None: ...


class DriftScores(Protocol):
    """A version's drift as computed (``algora.registry.drift.VersionDrift``)."""

    @property
    def model(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def features(self) -> Sequence[_Scored]: ...


_SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]*)?\Z")
_UNRESOLVED = 401, 403, 404
_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0,
)  # fmt: skip


class Metrics:
    """The gateway's Prometheus registry: what it counts as requests pass, and what it reads
    from the pools when scraped."""

    def __init__(
        self,
        pools: PoolManager,
        names: VersionNames,
        audit_lag: Callable[[], float | None] = lambda: None,
        samples: Callable[[], tuple[int, int]] = lambda: (0, 0),
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "algora_requests",
            "Requests the gateway answered, by the route's audit action and the status",
            ["action", "status"],
            registry=self.registry,
        )
        self._calls = Counter(
            "algora_model_calls",
            "Model calls answered, by model, version, the alias named, and outcome (ok, or the "
            "error code)",
            ["model", "version", "alias", "outcome"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "algora_model_call_duration_seconds",
            "Seconds from a model call's arrival to its answer, by model, version and alias",
            ["model", "version", "alias"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._scored = Counter(
            "algora_feedback_scored",
            "Answers scored by ground-truth feedback, by model, version, alias and kind (label: "
            "classification, value: regression)",
            ["model", "version", "alias", "kind"],
            registry=self.registry,
        )
        self._correct = Counter(
            "algora_feedback_correct",
            "Answers whose label matched the feedback's (accuracy: this over the scored labels)",
            ["model", "version", "alias"],
            registry=self.registry,
        )
        self._abs_error = Counter(
            "algora_feedback_absolute_error",
            "Absolute errors of the answers given a value as feedback, summed (mean absolute "
            "error: this over the scored values)",
            ["model", "version", "alias"],
            registry=self.registry,
        )
        self._request_children: dict[tuple[str, int], Any] = {}
        self._call_children: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}
        """Each label set's series, kept: ``labels()`` takes a lock and checks the labels on
        every call, which a request need not pay for (the label sets are bounded, see above)."""
        self._drift = Gauge(
            "algora_drift_psi",
            "Population stability index of a version's feature against its reference, as last "
            "computed (GET /drift); at most 50 features a version",
            ["model", "version", "feature"],
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)  # the gateway's own CPU, memory, files
        self.registry.register(_PoolCollector(pools, functools.lru_cache(maxsize=4096)(names)))
        self.registry.register(_AuditCollector(audit_lag))
        self.registry.register(_SampleCollector(samples))

    def observe(
        self,
        action: str | None,
        status: int,
        resource: str | None,
        version: str | None,
        error_code: str | None,
        seconds: float,
        alias: str | None = None,
    ) -> None:
        """Count one answered request (and, for a model call, its outcome and latency)."""
        key = (action or "none", status)
        requests = self._request_children.get(key)
        if requests is None:
            requests = self._request_children[key] = self._requests.labels(key[0], str(status))
        requests.inc()
        if action is None or not action.startswith("model.call"):
            return
        if status in _UNRESOLVED or not version or not _SEMVER.match(version) or not resource:
            resource = version = alias = ""  # it never reached a version: no name of the caller's
        # Algorithmia's API answers a model's own error with 200 and an error envelope
        outcome = error_code or ("ok" if status < 400 else f"http_{status}")
        self.observe_call(resource, version, alias or "", outcome, seconds)

    def observe_call(
        self, model: str, version: str, alias: str, outcome: str, seconds: float
    ) -> None:
        """Count one model call that no request answers by itself: a shadow's copy."""
        key = (model, version, alias, outcome)
        children = self._call_children.get(key)
        if children is None:
            children = self._call_children[key] = (
                self._calls.labels(model, version, alias, outcome),
                self._latency.labels(model, version, alias),
            )
        children[0].inc()
        children[1].observe(seconds)

    def observe_feedback(
        self, model: str, version: str, alias: str, correct: bool | None, abs_error: float | None
    ) -> None:
        """Count one answer scored by feedback (thread safe)."""
        if correct is not None:
            self._scored.labels(model, version, alias, "label").inc()
            self._correct.labels(model, version, alias).inc(int(correct))
        if abs_error is not None:
            self._scored.labels(model, version, alias, "value").inc()
            self._abs_error.labels(model, version, alias).inc(abs_error)

    def observe_drift(self, drift: DriftScores) -> None:
        """Set the drift gauge of each feature of a version whose drift was computed."""
        for feature in drift.features:
            if feature.psi is not None:
                self._drift.labels(drift.model, drift.version, feature.feature).set(feature.psi)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition in the format ``accept`` asks for (Prometheus text, or OpenMetrics),
        and its content type. Blocking: it reads ``/proc`` and may read the registry."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class _PoolCollector(Collector):
    """Each running pool's replicas, queue and restarts, and its workers' CPU and memory."""

    def __init__(self, pools: PoolManager, names: VersionNames) -> None:
        self._pools = pools
        self._names = names

    def collect(self) -> Iterator[Metric]:
        labels = ["model", "version"]
        gauges = {
            "replicas": GaugeMetricFamily(
                "algora_pool_replicas", "Live workers of a version", labels=labels
            ),
            "busy": GaugeMetricFamily(
                "algora_pool_busy_replicas", "Workers running a call or batch", labels=labels
            ),
            "queued": GaugeMetricFamily(
                "algora_pool_queued_calls", "Calls waiting for a worker", labels=labels
            ),
            "in_flight": GaugeMetricFamily(
                "algora_pool_in_flight_calls", "Calls waiting or running", labels=labels
            ),
            "memory": GaugeMetricFamily(
                "algora_worker_resident_memory_bytes",
                "Resident memory of a version's workers and what they started",
                labels=labels,
            ),
        }
        restarts = CounterMetricFamily(
            "algora_worker_restarts",
            "Workers of the running pool replaced after dying",
            labels=labels,
        )
        starts = CounterMetricFamily(
            "algora_pool_starts",
            "Times a version's workers were started from none (cold starts)",
            labels=labels,
        )
        batches = HistogramMetricFamily(
            "algora_batch_size", "Calls per dispatch to a worker (batches)", labels=labels
        )
        cpu = CounterMetricFamily(
            "algora_worker_cpu_seconds",
            "CPU time of a version's live workers and what they started",
            labels=labels,
        )
        for key, count in self._pools.starts().items():
            starts.add_metric(list(self._label(key)), count)
        for key, pool in self._pools.pools().items():
            names = list(self._label(key))
            stats = pool.stats()
            gauges["replicas"].add_metric(names, stats.alive)
            gauges["busy"].add_metric(names, stats.busy)
            gauges["queued"].add_metric(names, stats.queued)
            gauges["in_flight"].add_metric(names, stats.in_flight)
            restarts.add_metric(names, stats.restarts)
            if any(stats.batch_sizes):
                cumulative = list(itertools.accumulate(stats.batch_sizes))
                bounds = [*(f"{float(b)}" for b in BATCH_BUCKETS), "+Inf"]  # as Go writes them
                batches.add_metric(names, list(zip(bounds, cumulative, strict=True)), None)
            seconds, resident = _usage(stats.pids)
            cpu.add_metric(names, seconds)
            gauges["memory"].add_metric(names, resident)
        yield from gauges.values()
        yield from (restarts, starts, cpu, batches)

    def _label(self, key: str) -> tuple[str, str]:
        try:
            return self._names(key)
        except Exception:  # a version removed meanwhile: still counted, by its id
            return "", f"#{key}"


class _AuditCollector(Collector):
    def __init__(self, lag: Callable[[], float | None]) -> None:
        self._lag = lag

    def collect(self) -> Iterator[Metric]:
        lag = self._lag()
        if lag is not None:
            yield GaugeMetricFamily(
                "algora_audit_commit_lag_seconds",
                "Seconds the oldest journaled audit row has waited for the database",
                value=lag,
            )


class _SampleCollector(Collector):
    def __init__(self, counts: Callable[[], tuple[int, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        stored, dropped = self._counts()
        yield CounterMetricFamily(
            "algora_samples_stored", "Payload samples written to the store", value=stored
        )
        yield CounterMetricFamily(
            "algora_samples_dropped",
            "Payload samples dropped because the queue to the store was full",
            value=dropped,
        )


_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _usage(pids: tuple[int, ...]) -> tuple[float, int]:
    """CPU seconds and resident bytes of these processes and all they started."""
    ticks = pages = 0
    for root in pids:
        for pid in process_tree(root):
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
                pages += int(fields[21])  # rss
    return ticks / _TICKS, pages * _PAGE
