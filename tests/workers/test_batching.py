"""Adaptive batching: batches that wait to fill, a batch size that keeps a latency target, and
each caller's own outcome from a batch in which another item failed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from algora.errors import InvalidManifest, ModelError
from algora.modelfolder.manifest import validate_manifest
from algora.workers.batching import BatchLimit
from algora.workers.pool import Pool

from ..helpers import worker_spec
from .test_workers import req, run_with_pool

RECORDING = """
import time

class Model:
    def load(self):
        self.sizes = []

    def predict(self, input):
        return self.sizes if input == "sizes" else input * 2

    def predict_batch(self, inputs):
        self.sizes.append(len(inputs))
        time.sleep(0.004 * len(inputs))  # a batch costs more the larger it is
        out = []
        for item in inputs:
            if item == "bad":
                raise ValueError("one bad item")
            out.append(item * 2)
        return out
"""

PER_ITEM = """
class Model:
    def predict(self, input):
        if input == "bad":
            raise ValueError("bad input")
        return input * 2

    def predict_batch(self, inputs):
        return [self.predict(item) for item in inputs]
"""


def test_the_limit_rises_while_the_target_holds_and_falls_when_it_does_not() -> None:
    fixed = BatchLimit(32, None)
    fixed.observe(32, 10.0)
    assert fixed.value == 32  # no target: always the ceiling
    limit = BatchLimit(8, 0.1)
    assert limit.value == 1
    for _ in range(20):
        limit.observe(limit.value, 0.05)
    assert limit.value == 8  # additive increase, up to the ceiling
    limit.observe(4, 0.05)
    assert limit.value == 8  # a batch that was not full says nothing about a larger one
    limit.observe(8, 0.2)
    assert limit.value == 7
    for _ in range(30):
        limit.observe(limit.value, 0.2)
    assert limit.value == 1  # never below one


def test_a_batch_waits_to_fill(tmp_path: Path) -> None:
    spec = worker_spec(tmp_path, RECORDING, entrypoint="model:Model", max_wait=0.2)

    async def body(pool: Pool) -> None:
        first = asyncio.ensure_future(pool.call(req(1, rid="a")))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(pool.call(req(2, rid="b")))
        assert [json.loads(r.payload) for r in await asyncio.gather(first, second)] == [2, 4]
        sizes = json.loads((await pool.call(req("sizes"))).payload)
        assert sizes == [2], sizes

    run_with_pool(tmp_path, spec, body)


def test_the_batch_size_adapts_to_a_latency_target(tmp_path: Path) -> None:
    spec = worker_spec(tmp_path, RECORDING, entrypoint="model:Model", max_batch=32, target_p99=0.06)

    async def body(pool: Pool) -> None:
        async def caller(index: int) -> None:
            for round_ in range(25):
                result = await pool.call(req(index, rid=f"c{index}-{round_}"))
                assert json.loads(result.payload) == index * 2

        await asyncio.gather(*(caller(i) for i in range(24)))
        sizes = json.loads((await pool.call(req("sizes"))).payload)
        assert max(sizes) > 1, sizes  # it batched
        assert max(sizes) < 24, sizes  # but never all 24 waiting calls: 24 x 4 ms > 60 ms

    run_with_pool(tmp_path, spec, body)


def test_one_failing_item_fails_only_its_caller(tmp_path: Path) -> None:
    spec = worker_spec(tmp_path, PER_ITEM, entrypoint="model:Model", max_wait=0.2)

    async def body(pool: Pool) -> None:
        calls = [
            asyncio.ensure_future(pool.call(req(value, rid=f"r{i}")))
            for i, value in enumerate([1, "bad", 3])
        ]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        assert json.loads(outcomes[0].payload) == 2  # type: ignore[union-attr]
        assert isinstance(outcomes[1], ModelError)
        assert json.loads(outcomes[2].payload) == 6  # type: ignore[union-attr]

    run_with_pool(tmp_path, spec, body)


def test_the_manifest_sets_batching() -> None:
    manifest = validate_manifest(
        {
            "model": {"name": "m"},
            "serving": {"max_batch_size": 64, "max_wait_ms": 5, "target_p99_ms": 50},
        }
    )
    assert (manifest.serving.max_batch_size, manifest.serving.max_wait_ms) == (64, 5)
    assert manifest.serving.target_p99_ms == 50
    with pytest.raises(InvalidManifest, match="max_wait_ms"):
        validate_manifest({"model": {"name": "m"}, "serving": {"max_wait_ms": -1}})


PLAIN = """
def apply(input):
    print("seen", input)
    return {"input": input}
"""


def test_a_model_without_predict_batch_is_looped_in_batches_when_asked(tmp_path: Path) -> None:
    spec = worker_spec(tmp_path, PLAIN, max_batch=8, loop_batches=True, max_wait=0.1)

    async def body(pool: Pool) -> None:
        assert pool.info is not None and not pool.info.batch
        results = await asyncio.gather(*(pool.call(req(i, rid=f"p{i}")) for i in range(8)))
        assert [json.loads(r.payload)["input"] for r in results] == list(range(8))
        # In a batch, what the model prints goes to the log, not to one caller: the eight
        # answers carry none, where a call sent alone carries its own.
        assert [r.stdout for r in results] == [""] * 8
        alone = await pool.call(req(9, rid="alone"))
        assert alone.stdout == "seen 9\n"

    run_with_pool(tmp_path, spec, body)


def test_the_manifest_asks_for_batches_by_setting_a_size() -> None:
    from algora.registry.serving import worker_spec as serving_spec
    from algora.settings import Settings

    def spec_of(serving: dict[str, object]) -> object:
        manifest = validate_manifest({"model": {"name": "m"}, "serving": serving})
        return serving_spec(
            Settings(), manifest, python=Path("p"), source_dir=Path("s"), log_path=Path("l")
        )

    unset, set_ = spec_of({}), spec_of({"max_batch_size": 16})
    assert (unset.max_batch, unset.loop_batches) == (32, False)  # type: ignore[attr-defined]
    assert (set_.max_batch, set_.loop_batches) == (16, True)  # type: ignore[attr-defined]
