"""Gateway leases: which gateways on a registry are alive, so that builds are failed only when
the gateway that ran them is gone.

Each gateway holds a lease row that it renews every ``lease_seconds / 6``. A version that is
``building`` (or a source build in progress) names its gateway in ``builder``. At start-up, and
then at every renewal, a gateway fails the builds whose builder holds no live lease: a lease not
renewed within ``lease_seconds``, or one on this host whose process has exited (a gateway
restarted after a crash need not wait for its old lease to lapse). Without leases, a gateway
starting beside others would fail every build they were running.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session

from algora.db.engine import every
from algora.db.shared_state import GatewayLease
from algora.db.tables import utcnow

__all__ = ["Leases"]

logger = logging.getLogger(__name__)

OrphanSweep = Callable[[set[str]], int]
"""Fails the builds whose builder is not among the given live gateways; returns how many."""


class Leases:
    """This gateway's lease, and the sweep of builds that dead gateways left."""

    def __init__(self, sessions: Callable[[], Session], lease_seconds: float) -> None:
        self._sessions = sessions
        self.lease_seconds = lease_seconds
        self.instance = uuid.uuid4().hex
        """This gateway's name in ``builder`` columns and in its lease row."""
        self._host = socket.gethostname()[:255]
        self._sweeps: list[tuple[str, OrphanSweep]] = []

    def on_sweep(self, what: str, sweep: OrphanSweep) -> None:
        """Run ``sweep`` at every renewal; ``what`` names what it fails, in the log."""
        self._sweeps.append((what, sweep))

    def take(self) -> None:
        """Hold this gateway's lease (at start-up, before it builds anything)."""
        with self._sessions() as session:
            session.add(GatewayLease(instance=self.instance, host=self._host, pid=os.getpid()))
            session.commit()

    def release(self) -> None:
        """Give the lease up (at shutdown); what it still builds is failed by the next sweep."""
        with self._sessions() as session:
            session.execute(delete(GatewayLease).where(GatewayLease.instance == self.instance))
            session.commit()

    def renew_and_sweep(self) -> None:
        """Renew this gateway's lease, drop the lapsed ones, and fail their builds."""
        now = utcnow()
        lapsed_before = now - timedelta(seconds=self.lease_seconds)
        with self._sessions() as session:
            renewed = cast(
                CursorResult[Any],
                session.execute(
                    update(GatewayLease)
                    .where(GatewayLease.instance == self.instance)
                    .values(renewed_at=now)
                ),
            )
            if not renewed.rowcount:  # swept away by another gateway while this one stalled
                session.add(GatewayLease(instance=self.instance, host=self._host, pid=os.getpid()))
            rows = session.scalars(select(GatewayLease)).all()
            dead = {
                row.instance
                for row in rows
                if row.renewed_at < lapsed_before or self._exited_here(row)
            }
            if dead:
                session.execute(delete(GatewayLease).where(GatewayLease.instance.in_(dead)))
            session.commit()
            alive = {row.instance for row in rows} - dead
        for what, sweep in self._sweeps:
            failed = sweep(alive)
            if failed:
                logger.warning("marked %d %s left by a stopped gateway as failed", failed, what)

    def _exited_here(self, lease: GatewayLease) -> bool:
        if lease.instance == self.instance or lease.host != self._host:
            return False
        try:
            os.kill(lease.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # a process of another user: alive
            return False
        return False

    async def run(self) -> None:
        """Renew and sweep until cancelled (a failed round is logged and retried)."""
        await every(
            self.lease_seconds / 6,
            self.renew_and_sweep,
            logger,
            "could not renew this gateway's lease",
        )
