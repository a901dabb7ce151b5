"""``algora.report(name, value)``: model code reports a number about the call it serves (a
confidence, a count of faces found), aggregated per version in the model's reports
(``algora reports owner/name``, ``GET /api/v1/models/{owner}/{name}/reports``).

Inside an Algora worker it posts to the worker's own channel (``ALGORITHM_QUEUE_READER_URL``,
where Algorithmia's ``report_insights`` posts too); elsewhere (a notebook, a unit test) there is
no call to report about, and it does nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import httpx

from algora.sdk.client import raise_for_error

__all__ = ["report"]

_ADDRESS = "ALGORITHM_QUEUE_READER_URL"


def report(name: str | Mapping[str, float], value: float | None = None) -> bool:
    """Report ``value`` under ``name`` (or several: ``report({"faces": 3, "score": 0.9})``)
    for the call being served; True when reported, False outside a worker. A bad name or value
    raises :class:`~algora.errors.InvalidInput`."""
    values = dict(name) if isinstance(name, Mapping) else {name: value}
    address = os.environ.get(_ADDRESS)
    if not address:
        return False
    key = os.environ.get("ALGORA_KEY", "")
    response = httpx.post(
        address.rstrip("/") + "/insights",
        json=values,
        headers={"Authorization": f"Simple {key}"} if key else {},
        timeout=30,
    )
    raise_for_error(response)
    return True
