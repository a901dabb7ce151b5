"""Faults on the gateway's side, at the sizes a test run affords (benchmarks/reliability.py
runs the same scenarios at full size and prints their figures)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .gateway_faults import interrupted_upload, kill_during_writes, sigterm_under_load

pytestmark = pytest.mark.slow


def test_a_sigterm_under_load_drains_the_gateway(tmp_path: Path) -> None:
    figures = sigterm_under_load(tmp_path, in_flight=4, hold_s=4.0)
    print(figures.report())
    assert not figures.problems, figures.report()


def test_a_gateway_killed_during_writes_loses_no_acknowledged_one(tmp_path: Path) -> None:
    figures = kill_during_writes(tmp_path, kills=5)
    print(figures.report())
    assert not figures.problems, figures.report()


def test_an_upload_cut_off_by_a_crash_leaves_no_temp_file_behind(tmp_path: Path) -> None:
    figures = interrupted_upload(tmp_path)
    assert not figures.problems, figures.report()
