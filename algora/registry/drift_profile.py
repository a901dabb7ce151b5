"""Drift's arithmetic: the features of a call's input and output, a version's reference profile
(numeric features in 10 quantile bins, categorical ones as their 20 most common values and
"other") and the population stability index of a window's counts against it.

Features: an object's top-level fields (an object inside one flattened one level, as
``field.inner``; lists inside ignored); a list of numbers, its positions; a list of objects or
of lists (a batch), each item a row; anything else, one feature. Inputs are named ``input.*``
(``input`` alone for a plain value), outputs ``output.*``; a list of plain values as output is
a batch's answers, one row each. Numbers are numeric, strings and booleans categorical. At most
:data:`MAX_FEATURES` features a version (what its reference shows first).
"""

from __future__ import annotations

import bisect
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from algora.errors import InvalidManifest

__all__ = [
    "CATEGORIES",
    "EPSILON",
    "MAX_FEATURES",
    "NUMERIC_BINS",
    "FeatureProfile",
    "Profile",
    "Row",
    "build_profile",
    "psi",
    "read_reference",
    "reference_in",
    "rows_of",
]

NUMERIC_BINS = 10
CATEGORIES = 20
MAX_FEATURES = 50
EPSILON = 1e-4
"""The share an empty bin is taken to hold, so that the index stays finite."""
MAX_REFERENCE_BYTES = 64 * 1024 * 1024
"""The largest reference file read."""
MAX_ROWS = 1000
"""Rows one call may add (a larger batch counts its first ones)."""

Kind = Literal["numeric", "categorical"]
Row = dict[str, float | str]
"""A row's features: name -> number or category."""


def _plain(value: Any) -> float | str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return value[:200]
    return None


def _row(value: Any, prefix: str) -> Row:
    row: Row = {}
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, Mapping):
                for inner, deep in item.items():
                    plain = _plain(deep)
                    if plain is not None:
                        row[f"{prefix}.{key}.{inner}"[:80]] = plain
                continue
            plain = _plain(item)
            if plain is not None:
                row[f"{prefix}.{key}"[:80]] = plain
    elif isinstance(value, list):
        for index, item in enumerate(value[:MAX_FEATURES]):
            plain = _plain(item)
            if plain is not None:
                row[f"{prefix}.{index}"] = plain
    else:
        plain = _plain(value)
        if plain is not None:
            row[prefix] = plain
    return row


def rows_of(value: Any, side: Literal["input", "output"]) -> Iterator[Row]:
    """The rows ``value`` (a call's input or output, decoded JSON) holds, as their features."""
    batch = isinstance(value, list) and (
        side == "output" or (bool(value) and all(isinstance(v, Mapping | list) for v in value))
    )
    if batch:
        for item in value[:MAX_ROWS]:
            yield _row(item, side)
    elif value is not None:
        yield _row(value, side)


@dataclass(frozen=True)
class FeatureProfile:
    name: str
    kind: Kind
    edges: tuple[float, ...] = ()
    """Numeric: the inner edges of its bins (a value goes right of an equal edge)."""
    categories: tuple[str, ...] = ()
    """Categorical: its bins; one more bin holds every other value."""
    reference: tuple[int, ...] = ()
    """The reference's count in each bin."""

    def bin_of(self, value: float | str) -> int | None:
        """The bin ``value`` falls in; None for a value of the other kind."""
        if self.kind == "numeric":
            if isinstance(value, str):
                return None
            return bisect.bisect_right(self.edges, value)
        text = value if isinstance(value, str) else f"{value:g}"
        try:
            return self.categories.index(text)
        except ValueError:
            return len(self.categories)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "edges": list(self.edges),
            "categories": list(self.categories),
            "reference": list(self.reference),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureProfile:
        return cls(
            name=str(data["name"]),
            kind="numeric" if data["kind"] == "numeric" else "categorical",
            edges=tuple(float(edge) for edge in data.get("edges", ())),
            categories=tuple(str(category) for category in data.get("categories", ())),
            reference=tuple(int(count) for count in data.get("reference", ())),
        )


@dataclass(frozen=True)
class Profile:
    """A version's reference: its features and how many calls (or lines) made it."""

    size: int
    features: tuple[FeatureProfile, ...]

    def by_name(self) -> dict[str, FeatureProfile]:
        return {feature.name: feature for feature in self.features}

    def as_json(self) -> str:
        return json.dumps([feature.as_json() for feature in self.features])

    @classmethod
    def from_json(cls, size: int, text: str) -> Profile:
        return cls(size, tuple(FeatureProfile.from_json(item) for item in json.loads(text)))


def _edges(values: Sequence[float]) -> tuple[float, ...]:
    ordered = sorted(values)
    cut = (ordered[len(ordered) * i // NUMERIC_BINS] for i in range(1, NUMERIC_BINS))
    return tuple(sorted(set(cut) - {ordered[0]}))


def _feature(name: str, values: list[float | str]) -> FeatureProfile:
    if all(not isinstance(value, str) for value in values):
        numbers = [float(value) for value in values]
        edges = _edges(numbers)
        counts = [0] * (len(edges) + 1)
        for number in numbers:
            counts[bisect.bisect_right(edges, number)] += 1
        return FeatureProfile(name, "numeric", edges=edges, reference=tuple(counts))
    texts = [value if isinstance(value, str) else f"{value:g}" for value in values]
    common = Counter(texts).most_common(CATEGORIES)
    top = tuple(category for category, _count in common)
    counts = [count for _category, count in common]
    return FeatureProfile(
        name, "categorical", categories=top, reference=(*counts, len(texts) - sum(counts))
    )


def build_profile(calls: Iterable[tuple[Any, Any]]) -> Profile:
    """The profile of reference ``calls``: (input, output or None) each, decoded JSON."""
    values: dict[str, list[float | str]] = {}
    size = 0
    for given, answered in calls:
        size += 1
        for side, value in (("input", given), ("output", answered)):
            for row in rows_of(value, side):  # type: ignore[arg-type]
                for name, plain in row.items():
                    if name in values or len(values) < MAX_FEATURES:
                        values.setdefault(name, []).append(plain)
    return Profile(size, tuple(_feature(name, found) for name, found in values.items()))


def psi(reference: Sequence[int], live: Sequence[int]) -> float | None:
    """The population stability index of ``live`` counts against ``reference`` (same bins):
    the sum of (live share - reference share) * ln(live share / reference share), an empty
    bin taken as :data:`EPSILON`; None when either has no count."""
    expected, actual = sum(reference), sum(live)
    if not expected or not actual:
        return None
    total = 0.0
    for ref, now in zip(reference, live, strict=True):
        e, a = max(ref / expected, EPSILON), max(now / actual, EPSILON)
        total += (a - e) * math.log(a / e)
    return total


def read_reference(path: Path, named: str) -> Profile:
    """The profile of a reference file (``named``: its name in the model folder): JSON lines,
    each an input or ``{"input": ..., "output": ...}``. Raises InvalidManifest saying what is
    wrong with it."""
    where = f"monitoring.drift_reference: '{named}'"
    if not path.is_file():
        raise InvalidManifest(f"{where} is not a file in the model folder")
    if path.stat().st_size > MAX_REFERENCE_BYTES:
        raise InvalidManifest(f"{where} is over {MAX_REFERENCE_BYTES >> 20} MiB: sample it")
    calls: list[tuple[Any, Any]] = []
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError:
                raise InvalidManifest(f"{where} line {number} is not JSON") from None
            wrapped = isinstance(value, dict) and "input" in value and value.keys() <= _WRAPPED
            calls.append((value["input"], value.get("output")) if wrapped else (value, None))
    if not calls:
        raise InvalidManifest(f"{where} holds no line: one JSON input a line")
    return build_profile(calls)


_WRAPPED = {"input", "output"}


def reference_in(folder: Path, named: str | None) -> Profile | None:
    """The profile of the reference file ``named`` in model folder ``folder`` (None: none is
    named); raises InvalidManifest for a name outside the folder or a bad file."""
    if named is None:
        return None
    path = (folder / named).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise InvalidManifest("monitoring.drift_reference must name a file inside the model")
    return read_reference(path, named)
