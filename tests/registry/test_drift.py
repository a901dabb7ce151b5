"""Drift on each registry database: features, binning and the population stability index
(identical distributions score about 0, a shifted one over 0.25), a profile from a reference
file and from a version's first calls, and the live counts added to by two gateways."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from algora.db.tables import Model, Version
from algora.errors import InvalidManifest
from algora.modelfolder.manifest import validate_manifest
from algora.registry.drift import current_drift
from algora.registry.drift_counts import DriftCounts
from algora.registry.drift_profile import build_profile, psi, reference_in, rows_of
from algora.registry.signals import SIGNALS, Scope
from algora.workers.spec import CallResult

from ..conftest import DATABASES, database_url
from .conftest import migrated, owned_model


def _calls(ages: list[float], colors: list[str]) -> list[tuple[object, object]]:
    return [({"age": a, "color": c}, {"label": "yes"}) for a, c in zip(ages, colors, strict=True)]


def _live(profile_calls: list[tuple[object, object]], live: list[tuple[object, object]]) -> dict:
    """Each feature's PSI of ``live`` against the profile of ``profile_calls``."""
    profile = build_profile(profile_calls)
    scores = {}
    for feature in profile.features:
        counts = [0] * len(feature.reference)
        for given, answered in live:
            for side, value in (("input", given), ("output", answered)):
                for row in rows_of(value, side):  # type: ignore[arg-type]
                    if feature.name in row:
                        index = feature.bin_of(row[feature.name])
                        assert index is not None
                        counts[index] += 1
        scores[feature.name] = psi(feature.reference, counts)
    return scores


def test_identical_distributions_score_near_zero_and_a_shift_over_the_alert() -> None:
    rng = random.Random(7)
    colors = ["red", "green", "blue"]
    reference = _calls([rng.gauss(40, 10) for _ in range(2000)], rng.choices(colors, k=2000))
    same = _calls([rng.gauss(40, 10) for _ in range(2000)], rng.choices(colors, k=2000))
    shifted = _calls(
        [rng.gauss(60, 10) for _ in range(2000)], rng.choices(colors, [1, 1, 8], k=2000)
    )
    alike = _live(reference, same)
    assert alike["input.age"] < 0.02 and alike["input.color"] < 0.02
    assert alike["output.label"] == pytest.approx(0.0)
    moved = _live(reference, shifted)
    assert moved["input.age"] > 0.25 and moved["input.color"] > 0.25


def test_features_of_objects_vectors_batches_and_outputs() -> None:
    assert list(rows_of({"a": 1, "b": "x", "c": True, "d": {"e": 2}, "f": [1]}, "input")) == [
        {"input.a": 1.0, "input.b": "x", "input.c": "true", "input.d.e": 2.0}
    ]
    assert list(rows_of([0.5, 2], "input")) == [{"input.0": 0.5, "input.1": 2.0}]
    assert list(rows_of([[1, 2], [3, 4]], "input")) == [
        {"input.0": 1.0, "input.1": 2.0},
        {"input.0": 3.0, "input.1": 4.0},
    ]
    assert list(rows_of(["cat", "dog"], "output")) == [{"output": "cat"}, {"output": "dog"}]
    assert list(rows_of(0.7, "output")) == [{"output": 0.7}]
    profile = build_profile([({f"k{i}": i for i in range(80)}, None)])
    assert len(profile.features) == 50  # at most 50 features a version


def test_numeric_bins_are_deciles_and_categories_the_top_twenty_and_other() -> None:
    profile = build_profile([({"x": float(i), "c": f"c{i % 30}"}, None) for i in range(1000)])
    x, c = profile.by_name()["input.x"], profile.by_name()["input.c"]
    assert (x.kind, len(x.edges), x.reference) == ("numeric", 9, (100,) * 10)
    assert x.bin_of(-5.0) == 0 and x.bin_of(5000.0) == 9 and x.bin_of("text") is None
    assert (c.kind, len(c.categories), sum(c.reference)) == ("categorical", 20, 1000)
    assert c.bin_of("never seen") == 20
    assert psi([10, 0], [0, 10]) is not None and psi([1, 1], [0, 0]) is None


def test_a_reference_file_is_read_and_checked(tmp_path: Path) -> None:
    lines = [{"input": {"age": i}, "output": "a"} for i in range(50)] + [{"age": 1}]
    (tmp_path / "ref.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    profile = reference_in(tmp_path, "ref.jsonl")
    assert profile is not None and profile.size == 51
    assert [f.name for f in profile.features] == ["input.age", "output"]
    (tmp_path / "bad.jsonl").write_text('{"age": 1}\nnot json\n')
    with pytest.raises(InvalidManifest, match=r"'bad\.jsonl' line 2 is not JSON"):
        reference_in(tmp_path, "bad.jsonl")
    with pytest.raises(InvalidManifest, match="not a file in the model folder"):
        reference_in(tmp_path, "missing.jsonl")
    with pytest.raises(InvalidManifest, match="inside the model"):
        reference_in(tmp_path, "../escape.jsonl")


@pytest.mark.parametrize(
    ("monitoring", "problem"),
    [
        ({"drift": True}, "drift = true needs one reference"),
        ({"drift_reference_calls": 100}, "need drift = true"),
        ({"drift": True, "drift_reference_calls": 5}, "drift_reference_calls"),
        ({"drift": True, "drift_reference": "r", "drift_warn": 0.3}, "drift_warn must be below"),
    ],
)
def test_drift_settings_are_checked(monitoring: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidManifest, match=problem):
        validate_manifest({"model": {"name": "m"}, "monitoring": monitoring})


@dataclass
class World:
    sessions: sessionmaker[Session]
    model: Model
    version: Version


@pytest.fixture(params=DATABASES)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """olga/m 1.0.0 takes its drift reference from its first 20 calls."""
    with database_url(request.param) as url, migrated(url, tmp_path) as sessions:
        with sessions() as session:
            _olga, model = owned_model(session, "olga", "m")
            monitoring = {"drift": True, "drift_reference_calls": 20}
            version = Version(
                model_id=model.id, major=1, minor=0, patch=0, status="ready",
                manifest={"monitoring": monitoring},
            )  # fmt: skip
            session.add(version)
            session.commit()
            session.refresh(version)
            session.refresh(model)
            session.expunge_all()
        yield World(sessions, model, version)


def _answer(value: object) -> CallResult:
    return CallResult(
        content_type="json", payload=json.dumps(value).encode(), stdout="", duration=0
    )


def test_the_first_calls_make_the_profile_and_two_gateways_add_up(world: World) -> None:
    first, second = (
        DriftCounts(world.sessions, Path("/nowhere")),
        DriftCounts(world.sessions, Path("/x")),
    )
    for i in range(30):  # 20 make the profile, 10 are live
        payload = json.dumps({"x": i % 10, "kind": "a"}).encode()
        first.record(world.version, "json", payload, _answer(i % 2))
    asyncio.run(first.flush())
    for _ in range(10):  # another gateway: the profile is stored, all of its calls are live
        second.record(
            world.version, "json", json.dumps({"x": 100, "kind": "b"}).encode(), _answer(1)
        )
    asyncio.run(second.flush())
    with world.sessions() as session:
        version = session.get(Version, world.version.id)
        assert version is not None
        drift = current_drift(session, version)
    assert drift is not None
    assert (drift.reference, drift.reference_size, drift.calls) == ("calls", 20, 20)
    scores = {f.feature: f for f in drift.features}
    assert scores["input.x"].window_n == 20 and scores["input.x"].reference_n == 20
    assert scores["input.x"].status == "alert" and scores["input.kind"].status == "alert"
    assert drift.status == "alert"
    # the alerts' drift signal reads the same: the worst feature's PSI, over the window's calls
    with world.sessions() as session:
        version = session.get(Version, world.version.id)
        assert version is not None
        scope = Scope(
            session, version.model_id, "olga/m", version.semver, None, drift.since, drift.until
        )
        reading = SIGNALS["drift"](scope)
    worst = max(f.psi for f in drift.features if f.psi is not None)
    assert (reading.value, reading.count) == (pytest.approx(worst), 20)
