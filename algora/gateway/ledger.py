"""What every call is counted in: its version's per-minute statistics, its key's usage for
charge-back, and the quotas that usage is checked against."""

from __future__ import annotations

from algora.auth.delegation import accountable
from algora.auth.principals import Caller
from algora.registry.quotas import Quotas
from algora.registry.rollups import Rollups, outcome_of
from algora.registry.usage import Usage

__all__ = ["CallLedger"]


class CallLedger:
    """Admits calls against the quotas and counts each dispatched one; memory only (the
    counts are written to the registry in the background)."""

    def __init__(self, rollups: Rollups, usage: Usage, quotas: Quotas) -> None:
        self.rollups = rollups
        self.usage = usage
        self.quotas = quotas

    def admit(self, caller: Caller) -> None:
        """Raise :class:`~algora.errors.QuotaExceeded` when a quota of the caller's key or
        organization is spent."""
        self.quotas.check(accountable(caller))

    def record(
        self,
        caller: Caller,
        model_id: int,
        version_id: int,
        failure: BaseException | None,
        seconds: float,
        sizes: tuple[int, int],
        compute: float,
    ) -> None:
        """Count one dispatched call: ``sizes`` are its input's and answer's bytes, ``compute``
        the worker's CPU seconds for it (0 without an answer)."""
        outcome = outcome_of(failure)
        self.rollups.record(model_id, version_id, outcome, seconds, *sizes)
        self.usage.record(accountable(caller), model_id, outcome != 0, compute)
