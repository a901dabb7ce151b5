"""Counts kept on the serving loop and added to the registry every few seconds.

The call path adds to an in-memory dict (no lock, no I/O: it and the hand-over of what was
counted both run on the serving loop's thread); :meth:`Accumulator.run` writes what was counted
every few seconds in a thread, as one additive upsert that several gateways can make to the same
rows, and :meth:`Accumulator.flush` once more at shutdown. What a write fails to add is kept for
the next one.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from typing import Generic, Protocol, Self, TypeVar

__all__ = ["FLUSH_SECONDS", "Accumulator", "Addable"]

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 5.0
"""How often the counts are written: what a crash (not a graceful stop) may lose."""


class Addable(Protocol):
    def add(self, other: Self) -> None:
        """Add ``other``'s counts to these."""
        ...


K = TypeVar("K")
T = TypeVar("T", bound=Addable)


class Accumulator(ABC, Generic[K, T]):
    """Counts per key, written by :meth:`write` (a subclass's) in batches."""

    what = "counts"
    """What the counts are, for the log."""

    def __init__(self) -> None:
        self._pending: dict[K, T] = {}

    async def run(self, every: float = FLUSH_SECONDS) -> None:
        """Write what was counted every ``every`` seconds, until cancelled (then call
        :meth:`flush` for the rest)."""
        while True:
            await asyncio.sleep(every)
            await self.flush()

    def take(self) -> dict[K, T]:
        """What was counted since the last take, to :meth:`write` (on the serving loop)."""
        pending, self._pending = self._pending, {}
        return pending

    async def flush(self) -> None:
        """Write what was counted so far; kept for the next try when the registry fails."""
        pending = self.take()
        if not pending:
            return
        try:
            await asyncio.to_thread(self.write, pending)
        except Exception:
            logger.warning("could not write %s; will retry", self.what, exc_info=True)
            for key, counts in pending.items():
                current = self._pending.get(key)
                if current is None:
                    self._pending[key] = counts
                else:
                    current.add(counts)

    @abstractmethod
    def write(self, pending: dict[K, T]) -> None:
        """Add ``pending`` to the registry's rows (blocking, in a thread)."""
