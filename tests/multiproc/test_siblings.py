"""The control socket between ``algora serve --workers`` processes, on a real Unix socket."""

from __future__ import annotations

import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from algora.multiproc.siblings import Hub, Link


@pytest.fixture
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="algora-test-") as name:  # short: a socket path
        yield Path(name)


def test_a_change_anywhere_is_forgotten_everywhere_else_before_tell_returns(
    folder: Path,
) -> None:
    forgotten: Counter[str] = Counter()
    hub = Hub(folder / "control", lambda m: forgotten.update([f"primary {m}"]))
    links = [
        Link(hub.path, name, lambda m, n=name: forgotten.update([f"{n} {m}"])) for name in "ab"
    ]
    gone = threading.Event()
    for link in links:
        link.listen(gone.set)
        link.ready()
    assert hub.wait_ready(2, 5, lambda: True)

    links[0].tell("forget")
    assert forgotten == Counter({"primary forget": 1, "b forget": 1})
    hub.tell("warm 7")
    assert forgotten == Counter({"primary forget": 1, "b forget": 1, "a warm 7": 1, "b warm 7": 1})

    hub.close()
    assert gone.wait(5), "a front did not notice that its primary is gone"
    for link in links:
        link.close()


def test_waiting_for_fronts_ends_when_one_dies(folder: Path) -> None:
    hub = Hub(folder / "control", lambda _m: None)
    started = time.monotonic()
    assert not hub.wait_ready(1, 30, lambda: time.monotonic() - started < 0.2)
    assert time.monotonic() - started < 10
    hub.close()


def test_a_front_that_stopped_answering_is_told_no_more(folder: Path) -> None:
    hub = Hub(folder / "control", lambda _m: None)
    told: list[str] = []
    alive = Link(hub.path, "a", lambda _m: told.append("a"))
    alive.listen(lambda: None)
    dead = Link(hub.path, "b", lambda _m: told.append("b"))  # never listens: never answers
    alive.ready()
    dead.ready()
    assert hub.wait_ready(2, 5, lambda: True)
    dead.close()
    hub.tell("forget")
    assert told == ["a"]
    assert hub.ready() == 1
    hub.close()
    alive.close()
