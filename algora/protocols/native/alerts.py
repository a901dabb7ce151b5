"""``/api/v1/models/{owner}/{name}/alerts``: a model's alert rules (add, list, delete) and each
rule's deliveries to its webhook; ``models:manage`` and manage rights on the model (see
:mod:`algora.registry.alerts`)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from algora.auth.principals import Caller
from algora.gateway.openapi import UtcDateTime
from algora.gateway.permissions import Needs, PermissionRoute
from algora.protocols.routing import NOTHING, Op, Takes, add_routes, each, one
from algora.protocols.wire import FromView
from algora.registry.alerts import AlertRules, RuleRequest

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", route_class=PermissionRoute, tags=["alerts"])
ReadRules = Annotated[Caller, Depends(Needs("models:manage"))]
WriteRules = Annotated[Caller, Depends(Needs("models:manage", write=True))]
RuleId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The rule's number.")]
_RULE = "alert/{owner}/{name}/{rule_id}"


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signal: Annotated[str, StringConstraints(min_length=1, max_length=32)] = Field(
        description="error_rate, p95_ms, p99_ms, accuracy, mean_abs_error or drift (and any "
        "other signal the server registers)."
    )
    comparison: Literal["above", "below"] = Field(description="Which side is a breach.")
    threshold: float = Field(allow_inf_nan=False)
    window: Annotated[str, StringConstraints(max_length=8)] = Field(
        description="The window the signal is read over: 1m to 24h (5m, 90m, 1h)."
    )
    webhook: Annotated[str, StringConstraints(min_length=1, max_length=2048)] = Field(
        description="The http:// or https:// URL the rule's changes are posted to."
    )
    version: Annotated[str | None, StringConstraints(max_length=40)] = Field(
        default=None, description="Only this version (1.2.3)."
    )
    alias: Annotated[str | None, StringConstraints(max_length=64)] = Field(
        default=None, description="Only the calls through this alias (or its versions')."
    )
    min_calls: int = Field(
        default=10, ge=1, le=1_000_000, description="Calls the window needs before it may fire."
    )
    secret: Annotated[str | None, StringConstraints(min_length=16, max_length=256)] = Field(
        default=None, description="The signing secret; default: one made by the server."
    )


class RuleOut(FromView):
    id: int
    model: str
    signal: str
    comparison: str
    threshold: float
    window: str
    version: str | None
    alias: str | None
    min_calls: int
    webhook: str
    state: str = Field(description="ok (never fired), firing or resolved.")
    last_value: float | None
    last_count: int = Field(description="The calls (or scored answers) last read.")
    evaluated_at: UtcDateTime | None
    created_at: UtcDateTime


class NewRuleOut(FromView):
    rule: RuleOut
    secret: str = Field(description="The signing secret: shown this once.")


class AttemptOut(FromView):
    at: UtcDateTime
    status_code: int | None
    error: str | None


class DeliveryOut(FromView):
    delivery_id: str
    rule_id: int
    state: str
    value: float | None
    status: str = Field(description="pending, delivered or failed.")
    tries: int
    attempts: list[AttemptOut]
    created_at: UtcDateTime
    next_attempt_at: UtcDateTime | None


def _request(body: RuleIn) -> tuple[RuleRequest]:
    return (RuleRequest(**body.model_dump()),)


add_routes(
    router,
    lambda platform: platform.alerts,
    Op(
        "POST /models/{owner}/{name}/alerts",
        "add_alert",
        AlertRules.add,
        WriteRules,
        one(NewRuleOut),
        "alert.add",
        status_code=201,
        body=Takes(RuleIn, _request),
        resource="alert/{owner}/{name}",
        summary="Add an alert rule: a signal over a window, delivered to a webhook",
    ),
    Op(
        "GET /models/{owner}/{name}/alerts",
        "list_alerts",
        AlertRules.rules,
        ReadRules,
        each(RuleOut),
        "alert.list",
        summary="A model's alert rules and their state",
    ),
    Op(
        "DELETE /models/{owner}/{name}/alerts/{rule_id}",
        "delete_alert",
        AlertRules.delete,
        WriteRules,
        NOTHING,
        "alert.delete",
        status_code=204,
        resource=_RULE,
        types={"rule_id": RuleId},
        summary="Delete an alert rule and its deliveries",
    ),
    Op(
        "GET /models/{owner}/{name}/alerts/{rule_id}/deliveries",
        "alert_deliveries",
        AlertRules.deliveries,
        ReadRules,
        each(DeliveryOut),
        "alert.deliveries",
        resource=_RULE,
        types={"rule_id": RuleId},
        summary="An alert rule's deliveries to its webhook, each try's outcome",
    ),
)
