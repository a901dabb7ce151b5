"""``GET /api/v1/models/{owner}/{name}/drift``: a version's input and output drift against its
reference (see :mod:`algora.registry.drift`); ``models:read`` and read rights on the model."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from algora.auth.principals import Caller
from algora.gateway.openapi import UtcDateTime
from algora.gateway.permissions import Needs, PermissionRoute
from algora.protocols.native.stats import moment_query
from algora.protocols.routing import Op, add_routes, one
from algora.protocols.wire import FromView
from algora.registry.drift import Drift, Status, VersionDrift
from algora.registry.stats import parse_moment

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", route_class=PermissionRoute, tags=["statistics"])
ReadModels = Annotated[Caller, Depends(Needs("models:read"))]


class FeatureDriftOut(FromView):
    feature: str = Field(description="input.FIELD, input.N (a position), output or output.FIELD.")
    kind: str = Field(description="numeric (10 quantile bins) or categorical (top 20, other).")
    psi: float | None = Field(description="Population stability index; null: no value seen.")
    status: Status
    window_n: int = Field(description="Values of the feature in the window.")
    reference_n: int = Field(description="Values of the feature in the reference.")


class VersionDriftOut(FromView):
    """A version's drift over the window: each feature's PSI and status by its thresholds."""

    model: str
    version: str
    since: UtcDateTime
    until: UtcDateTime
    reference: str = Field(description="file, calls (the first N), or pending (not made yet).")
    reference_size: int = Field(description="Calls (or lines) the reference holds.")
    calls: int = Field(description="The version's calls counted in the window.")
    warn: float
    alert: float
    status: Status = Field(description="The worst feature's status.")
    features: list[FeatureDriftOut]


def _drift(
    drift: Drift,
    caller: Caller,
    owner: str,
    name: str,
    since: str | None,
    until: str | None,
    version: str | None,
) -> VersionDrift:
    now = datetime.now(UTC).replace(tzinfo=None)
    return drift.drift(
        caller,
        owner,
        name,
        since=parse_moment(since, now),
        until=parse_moment(until, now),
        version=version,
    )


add_routes(
    router,
    lambda platform: platform.drift,
    Op(
        "GET /models/{owner}/{name}/drift",
        "model_drift",
        _drift,
        ReadModels,
        one(VersionDriftOut),
        "drift.read",
        query={
            "since": moment_query("From (an hour before until)"),
            "until": moment_query("To (now)"),
            "version": (
                Annotated[
                    str | None,
                    Query(
                        max_length=40,
                        description="This version (1.2.3); default: the newest "
                        "ready one with drift on.",
                    ),
                ],
                None,
            ),
        },
        summary="A version's input and output drift (PSI per feature) against its reference",
    ),
)
