"""A model page's charts: calls, errors and latency over a window, from the registry's
per-minute statistics (:mod:`algora.registry.stats`), drawn as inline SVG on the server (no
script), each with the table of its figures for screen readers and copying."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from algora.registry.stats import ModelStats

__all__ = ["WINDOWS", "Chart", "Window", "charts"]

Window = Literal["1h", "24h", "30d"]
WINDOWS: dict[str, tuple[timedelta, str]] = {
    "1h": (timedelta(hours=1), "1m"),
    "24h": (timedelta(hours=24), "1h"),
    "30d": (timedelta(days=30), "1d"),
}
"""Each window the page offers: how far back, and the statistics' step."""

WIDTH, HEIGHT, PAD = 320, 90, 4


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    polyline: str
    """The SVG ``points`` of the line ("" when nothing was called)."""
    peak: float
    total: str
    rows: tuple[tuple[str, str], ...]
    """(bucket start, value) for the table under the chart."""


def charts(stats: ModelStats) -> list[Chart]:
    """Calls and errors per bucket (all versions together), and the slowest version's p95."""
    starts = [p.start for p in stats.versions[0].points] if stats.versions else []
    calls = [0.0] * len(starts)
    errors = [0.0] * len(starts)
    p95: list[float | None] = [None] * len(starts)
    for version in stats.versions:
        for index, point in enumerate(version.points[: len(starts)]):
            calls[index] += point.calls
            errors[index] += point.errors
            if point.p95_ms is not None:
                p95[index] = max(p95[index] or 0.0, point.p95_ms)
    labels = [start.strftime("%Y-%m-%d %H:%M") for start in starts]
    every = sum(int(c) for c in calls)
    failed = sum(int(e) for e in errors)
    slowest = max((v for v in p95 if v is not None), default=None)
    return [
        _chart("Calls", f"per {stats.step}", labels, calls, f"{every} in all"),
        _chart("Errors", f"per {stats.step}", labels, errors, f"{failed} in all"),
        _chart("Latency p95", "ms", labels, p95, _slowest(slowest)),
    ]


def _slowest(p95_ms: float | None) -> str:
    return "no calls" if p95_ms is None else f"at most {p95_ms:.1f} ms"


def _chart(
    title: str, unit: str, labels: list[str], values: Sequence[float | None], total: str
) -> Chart:
    known = [v for v in values if v is not None]
    peak = max(known, default=0.0)
    points = []
    for index, value in enumerate(values):
        if value is None:
            continue
        x = PAD + (WIDTH - 2 * PAD) * (index / max(1, len(values) - 1))
        y = HEIGHT - PAD - (HEIGHT - 2 * PAD) * (value / peak if peak else 0.0)
        points.append(f"{x:.1f},{y:.1f}")
    rows = tuple(
        (label, "-" if value is None else f"{value:g}")
        for label, value in zip(labels, values, strict=True)
    )
    return Chart(title, unit, " ".join(points) if peak else "", peak, total, rows)
