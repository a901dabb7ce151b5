"""Fixtures shared by the model-folder tests."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    """A folder the fuzz tests of a module write their candidate files into."""
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)
