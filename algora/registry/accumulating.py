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
from collections.abc import Mapping, Sequence
from typing import Any, Generic, Literal, Protocol, Self, TypeVar

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Session

__all__ = ["FLUSH_SECONDS", "Accumulator", "Addable", "add_rows", "additive_upsert"]

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


_SQLITE_EXTREMES = {"least": "min", "greatest": "max"}


def additive_upsert(
    session: Session,
    table: type[DeclarativeBase],
    keys: Sequence[str],
    added: Sequence[str],
    extremes: Mapping[str, Literal["least", "greatest"]] | None = None,
) -> Any:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE`` into ``table``: a row already there gets the
    new row's ``added`` columns added to its own, and keeps the least or greatest of each column
    of ``extremes``. SQLite and PostgreSQL both speak it, so several gateways add to one row."""
    postgres = session.get_bind().dialect.name == "postgresql"
    statement = (postgresql.insert if postgres else sqlite.insert)(table)
    columns, new = table.__table__.c, statement.excluded
    # SQLite spells LEAST and GREATEST as min and max with two arguments
    spelled = {"least": "least", "greatest": "greatest"} if postgres else _SQLITE_EXTREMES
    changes = {name: columns[name] + new[name] for name in added}
    for name, which in (extremes or {}).items():
        changes[name] = getattr(func, spelled[which])(columns[name], new[name])
    return statement.on_conflict_do_update(index_elements=list(keys), set_=changes)


def add_rows(session: Session, upsert: Any, rows: Sequence[Mapping[str, Any]]) -> bool:
    """Execute ``upsert`` (an :func:`additive_upsert`) with ``rows`` and commit; False, rolled
    back, when a row names one that is gone (a version or model deleted meanwhile)."""
    try:
        session.execute(upsert, rows)
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True
