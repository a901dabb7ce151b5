"""Faults on the workers' side, at the sizes a test run affords (benchmarks/reliability.py
runs the same scenarios at full size and prints their figures)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .worker_faults import broken_version, hung_model, kill_a_worker, soak

pytestmark = pytest.mark.slow


def test_a_worker_killed_under_load_fails_no_call_uncoded_and_comes_back(tmp_path: Path) -> None:
    figures = kill_a_worker(tmp_path, calls=200)
    print(figures.report())
    assert not figures.problems, figures.report()


def test_a_hung_model_deaf_to_sigterm_times_out_and_its_worker_is_replaced(
    tmp_path: Path,
) -> None:
    figures = hung_model(tmp_path, timeout_s=2.0)
    assert not figures.problems, figures.report()


def test_a_version_that_fails_to_load_fails_no_call_to_the_one_serving(tmp_path: Path) -> None:
    figures = broken_version(tmp_path, callers=4, seconds=2.0)
    assert not figures.problems, figures.report()


def test_a_soak_leaves_memory_open_files_and_threads_flat(tmp_path: Path) -> None:
    figures = soak(tmp_path, calls=3000, warmup=500)
    print(figures.report())
    assert not figures.problems, figures.report()
