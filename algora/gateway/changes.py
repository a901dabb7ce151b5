"""Caches that hold across gateways: a change made through one gateway reaches every other
on the same registry within a second.

Each gateway caches callers (keys, scopes, grants) and resolved versions for a few seconds.
When it changes one of those (a key revoked, a grant, a publish, an alias moved), it drops its
own caches at once and marks the change; its feed then increments the registry's one
``cache_epoch`` row, and every gateway's feed, reading that row a few times a second, drops its
caches when the epoch has moved by another's hand. One small read per gateway per tick; no
notification channel to run beside the database.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from algora.db.shared_state import CacheEpoch

__all__ = ["ChangeFeed"]

logger = logging.getLogger(__name__)

TICK = 0.25
"""Seconds between two looks at the epoch: a change reaches other gateways within two ticks."""


class ChangeFeed:
    """Marks this gateway's changes in the registry, and forgets what others changed."""

    def __init__(
        self, sessions: sessionmaker[Session], forget: Sequence[Callable[[], None]]
    ) -> None:
        self._sessions = sessions
        self._forget = tuple(forget)
        self._pending = threading.Event()
        self._seen: int | None = None

    def changed(self) -> None:
        """This gateway changed what gateways cache (it has dropped its own caches already).
        Thread safe and non-blocking: the next tick tells the others."""
        self._pending.set()

    async def start(self) -> None:
        """Read the epoch as it is, before this gateway caches anything (before it serves)."""
        self._seen = await asyncio.to_thread(self._read)

    def _read(self) -> int | None:
        with self._sessions() as session:
            return session.scalar(select(CacheEpoch.epoch).where(CacheEpoch.id == 1))

    async def run(self) -> None:
        """Tick until cancelled (in the serving loop), once :meth:`start` has read the epoch."""
        while True:
            await asyncio.sleep(TICK)
            try:
                await asyncio.to_thread(self.tick)
            except Exception:  # a database that is down for a moment: try again next tick
                logger.warning("could not read the registry's cache epoch", exc_info=True)

    def tick(self) -> None:
        """Publish a pending change, or notice another gateway's (blocking)."""
        with self._sessions() as session:
            if self._pending.is_set():
                self._pending.clear()
                epoch = session.scalar(
                    update(CacheEpoch)
                    .where(CacheEpoch.id == 1)
                    .values(epoch=CacheEpoch.epoch + 1)
                    .returning(CacheEpoch.epoch)
                )
                session.commit()
                before = None if epoch is None else epoch - 1
            else:
                epoch = before = session.scalar(select(CacheEpoch.epoch).where(CacheEpoch.id == 1))
        if epoch is None:
            return
        if self._seen is not None and before != self._seen:
            for forget in self._forget:  # another gateway changed something meanwhile
                forget()
        self._seen = epoch
