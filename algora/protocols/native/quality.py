"""How well models answer: ``POST /api/v1/feedback`` (the ground truth of a call, from a caller
allowed to call its model: ``call`` scope and call rights; see
:mod:`algora.registry.feedback`) and ``GET /api/v1/models/{owner}/{name}/aliases/{alias}/compare``
(an alias's primary beside its canaries and shadow: ``models:read`` and read rights; see
:mod:`algora.registry.compare`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from algora.auth.principals import Caller
from algora.gateway.auditing import AuditTrail
from algora.gateway.openapi import UtcDateTime
from algora.gateway.permissions import Needs, PermissionRoute
from algora.protocols.native.stats import moment_query
from algora.protocols.routing import Op, Takes, add_routes, one
from algora.protocols.wire import FromView
from algora.registry.compare import Comparison, Comparisons, Role
from algora.registry.feedback import Feedback, FeedbackView
from algora.registry.stats import parse_moment

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", route_class=PermissionRoute)
Calls = Annotated[Caller, Depends(Needs("call", write=True))]
ReadModels = Annotated[Caller, Depends(Needs("models:read"))]
Label = str | int | float | bool


class FeedbackIn(BaseModel):
    """The ground truth of one call: ``label`` (classification) or ``value`` (regression)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["label"],
                    "properties": {"label": {"type": ["string", "number", "boolean"]}},
                },
                {"required": ["value"], "properties": {"value": {"type": "number"}}},
            ]
        },
    )

    request_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="The call's request id (the X-Request-Id header of its answer)."
    )
    label: Annotated[str, StringConstraints(max_length=1000)] | int | float | bool | None = Field(
        default=None, description="The true label: compared for equality with the prediction."
    )
    value: float | None = Field(
        default=None, description="The true value: the prediction's absolute error is scored."
    )


class FeedbackOut(FromView):
    request_id: str
    model: str
    version: str = Field(description="The version that answered the call.")
    alias: str | None = Field(description="The alias the call named, if any.")
    label: Label | None
    value: float | None
    scored: bool = Field(
        description="False when the answer could not be scored: not JSON, over the 4 KiB "
        "recorded, or with no prediction of the ground truth's kind."
    )
    correct: bool | None
    abs_error: float | None
    received_at: UtcDateTime


class SideOut(FromView):
    version: str
    role: Role
    weight: int | None = Field(description="Its share of the alias's calls in percent.")
    calls: int
    errors: int
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    scored: int = Field(description="Answers through the alias scored by feedback.")
    accuracy: float | None
    mean_abs_error: float | None
    compared: int = Field(description="Calls both the primary and this side answered.")
    agreement: float | None = Field(
        description="Share of the compared calls whose predictions matched; null: n/a."
    )


class ComparisonOut(FromView):
    """Latency and errors: each version's calls in the window; accuracy: feedback on the calls
    through the alias; agreement: the shadow's answers against the primary's."""

    model: str
    alias: str
    since: UtcDateTime
    until: UtcDateTime
    primary: SideOut
    others: list[SideOut]


def _noted(view: FeedbackView, trail: AuditTrail) -> None:
    trail.resource, trail.version = view.model, view.version


def _compare(
    comparisons: Comparisons,
    caller: Caller,
    owner: str,
    name: str,
    alias: str,
    since: str | None,
    until: str | None,
) -> Comparison:
    now = datetime.now(UTC).replace(tzinfo=None)
    return comparisons.compare(
        caller,
        owner,
        name,
        alias,
        since=parse_moment(since, now),
        until=parse_moment(until, now),
    )


add_routes(
    router,
    lambda platform: platform.feedback,
    Op(
        "POST /feedback",
        "give_feedback",
        Feedback.give,
        Calls,
        one(FeedbackOut),
        "feedback.give",
        status_code=201,
        body=Takes(FeedbackIn, lambda body: (body.request_id, body.label, body.value)),
        noted=_noted,
        summary="Send the ground truth of a call, to score what its version answered",
    ),
    tags=("statistics",),
)
add_routes(
    router,
    lambda platform: platform.comparisons,
    Op(
        "GET /models/{owner}/{name}/aliases/{alias}/compare",
        "compare_alias",
        _compare,
        ReadModels,
        one(ComparisonOut),
        "alias.compare",
        query={
            "since": moment_query("From (an hour before until)"),
            "until": moment_query("To (now)"),
        },
        summary="Compare an alias's primary with its canaries and shadow",
    ),
    tags=("aliases",),
)
