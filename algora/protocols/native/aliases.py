"""Aliases and promotions under ``/api/v1``: see :mod:`algora.registry.aliases` for the rules.

Reading a model's aliases needs ``models:read``; setting and deleting them, and asking for a
promotion, ``aliases:write`` plus manage rights on the model; approving and rejecting
promotions ``aliases:approve`` plus manage rights (and not being the requester). Promotion
requests are shown to the model's managers only.

Every change is audited with the model as its resource and ``alias:old->new`` as its version
(``production:1.0.0->1.1.0``); an approval writes two rows under one request id: the approval
(``promotion.approve``) and the move it made (``alias.move``).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.config import JsonDict

from algora.auth.principals import Caller
from algora.gateway import promotions
from algora.gateway.auditing import AuditTrail, trail_of
from algora.gateway.calls import new_request_id
from algora.gateway.deps import platform_of
from algora.gateway.openapi import UtcDateTime
from algora.gateway.permissions import Needs, PermissionRoute, audited
from algora.gateway.promotions import Origin
from algora.protocols.routing import NOTHING, Op, Takes, add_routes, each, one
from algora.protocols.wire import FromView
from algora.registry.aliases import Aliases, AliasView, Move, PromotionStatus, PromotionView

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", route_class=PermissionRoute, tags=["aliases"])
ReadModels = Annotated[Caller, Depends(Needs("models:read"))]
WriteAliases = Annotated[Caller, Depends(Needs("aliases:write", write=True))]
ApproveAliases = Annotated[Caller, Depends(Needs("aliases:approve", write=True))]
PromotionId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The request's number.")]
StatusQuery = Annotated[
    PromotionStatus | Literal["all"],
    Query(description="Which requests: pending (default), a decided status, or all."),
]


class AliasOut(BaseModel):
    model: str
    alias: str
    version: str = Field(description="The version it points at; with a split, the largest share.")
    weights: dict[str, int] = Field(
        description="Each version its calls go to and its share (its one version: 100)."
    )
    shadow: str | None = Field(description="The version that gets a copy of each call.")
    sticky: bool = Field(description="Each caller's key keeps to one version of the split.")
    protected: bool = Field(description="Moves only by an approved promotion.")
    updated_at: UtcDateTime
    updated_by: str | None

    @classmethod
    def of(cls, view: AliasView) -> AliasOut:
        taken = ("alias", "weights")
        fields = {name: getattr(view, name) for name in cls.model_fields if name not in taken}
        return cls.model_validate({**fields, "alias": view.name, "weights": dict(view.weights)})


_SPEC = Annotated[str, StringConstraints(min_length=1, max_length=100)]
_VERSION = "A version spec of this model (1.2.3, 1.x, latest, another alias), resolved now"
_NOTE = "Why (shown to approvers)."
_GIVEN: dict[str, JsonDict] = {
    "version": {"required": ["version"], "properties": {"version": {"type": "string"}}},
    "versions": {"required": ["versions"], "properties": {"versions": {"type": "object"}}},
}
"""A field given (not null): the body names exactly one of ``version`` and ``versions``."""


class AliasIn(BaseModel):
    """``version``, or ``versions`` with weights to split the alias's calls between them;
    ``shadow`` for a version that gets a copy of each call (its answers discarded)."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [_GIVEN["version"], _GIVEN["versions"]]})

    version: _SPEC | None = Field(
        default=None, description=f"{_VERSION}: the alias points at that one version."
    )
    note: str = Field(default="", max_length=500, description=_NOTE)
    versions: dict[_SPEC, Annotated[int, Field(ge=1, le=1_000_000)]] | None = Field(
        default=None,
        min_length=1,
        max_length=10,
        description='Version specs and their shares of the calls: {"1.0.0": 90, "1.1.0": 10}.',
    )
    shadow: _SPEC | None = Field(
        default=None, description="A version spec: that version gets a copy of each call."
    )
    sticky: bool = Field(
        default=False,
        description="With versions: each caller's key keeps to one of them, drawn by weight "
        "from the key (a canary's callers stay on the canary as its share grows).",
    )


class PromotionOut(FromView):
    id: int
    model: str
    alias: str
    version: str
    from_version: str | None
    status: PromotionStatus
    requested_by: str
    requested_at: UtcDateTime
    expires_at: UtcDateTime
    note: str
    decided_by: str | None
    decided_at: UtcDateTime | None
    decision_note: str


class AliasSetOut(BaseModel):
    """200: the alias moved (``alias``); 202: it is protected, and ``promotion`` waits for a
    second principal's approval."""

    moved: bool
    alias: AliasOut | None = None
    promotion: PromotionOut | None = None


class PromotionIn(BaseModel):
    version: str = Field(
        min_length=1,
        max_length=100,
        description=f"{_VERSION}: the alias points at that one version.",
    )
    note: str = Field(default="", max_length=500, description=_NOTE)
    alias: str = Field(max_length=64)


class DecisionIn(BaseModel):
    note: str = Field(default="", max_length=500)


Decision = Annotated[DecisionIn | None, Body()]


def _noted(change: Move | PromotionView, trail: AuditTrail) -> None:
    """The change made, for the audit row (a refusal is recorded with the route's declared
    action and the model its path names)."""
    trail.resource, trail.version = change.model, change.audit_text


# the routes that call one Aliases method -----------------------------------------------------
def _promotions(
    aliases: Aliases,
    caller: Caller,
    owner: str | None,
    name: str | None,
    status: PromotionStatus | Literal["all"],
) -> list[PromotionView]:
    return aliases.promotions(caller, owner, name, None if status == "all" else status)


def _listing(route: str, name: str, call: Callable[..., object], summary: str) -> Op:
    """A route that lists promotion requests: by status, the pending ones unless asked."""
    return Op(
        route,
        name,
        call,
        ReadModels,
        each(PromotionOut),
        "promotion.list",
        query={"status": (StatusQuery, "pending")},
        summary=summary,
    )


def _why(body: DecisionIn | None) -> tuple[str]:
    return (body.note if body else "",)


add_routes(
    router,
    lambda platform: platform.aliases,
    Op(
        "GET /models/{owner}/{name}/aliases",
        "list_aliases",
        Aliases.list_aliases,
        ReadModels,
        each(AliasOut),
        "alias.list",
        summary="A model's aliases and the versions they point at",
    ),
    Op(
        "GET /models/{owner}/{name}/aliases/{alias}",
        "get_alias",
        Aliases.get_alias,
        ReadModels,
        one(AliasOut),
        "alias.read",
        summary="The version an alias points at",
    ),
    Op(
        "DELETE /models/{owner}/{name}/aliases/{alias}",
        "delete_alias",
        Aliases.delete_alias,
        WriteAliases,
        NOTHING,
        "alias.delete",
        noted=_noted,
        forget=True,
        summary="Delete an alias (not a protected one); calls naming it then get 404",
        status_code=204,
    ),
    _listing(
        "GET /promotions",
        "list_all_promotions",
        lambda aliases, caller, status: _promotions(aliases, caller, None, None, status),
        "Promotion requests of every model you manage, newest first",
    ),
    _listing(
        "GET /models/{owner}/{name}/promotions",
        "list_promotions",
        _promotions,
        "A model's promotion requests, newest first (its managers)",
    ),
    Op(
        "POST /models/{owner}/{name}/promotions",
        "request_promotion",
        Aliases.request_promotion,
        WriteAliases,
        one(PromotionOut),
        "promotion.request",
        body=Takes(PromotionIn, lambda body: (body.alias, body.version, body.note)),
        noted=_noted,
        summary="Ask for an alias to point at a version once a second principal approves",
        status_code=201,
    ),
    Op(
        "GET /models/{owner}/{name}/promotions/{promotion_id}",
        "get_promotion",
        Aliases.promotion,
        ReadModels,
        one(PromotionOut),
        "promotion.read",
        types={"promotion_id": PromotionId},
        summary="One promotion request (its model's managers)",
    ),
    Op(
        "POST /models/{owner}/{name}/promotions/{promotion_id}/reject",
        "reject_promotion",
        Aliases.reject,
        ApproveAliases,
        one(PromotionOut),
        "promotion.reject",
        body=Takes(Decision, _why, default=None),
        noted=_noted,
        types={"promotion_id": PromotionId},
        summary="Reject another principal's promotion request: nothing moves",
    ),
)


# the two that do more: a protected alias's move asks; an approval also moves -----------------
@router.put(
    "/models/{owner}/{name}/aliases/{alias}",
    summary="Point an alias at a ready version; a protected one: ask for a promotion (202)",
    openapi_extra=audited("alias.move"),
)
async def set_alias(
    request: Request,
    response: Response,
    caller: WriteAliases,
    owner: str,
    name: str,
    alias: str,
    body: AliasIn,
) -> AliasSetOut:
    platform = platform_of(request)
    outcome = await asyncio.to_thread(
        functools.partial(
            platform.aliases.set_alias,
            weights=body.versions,
            shadow=body.shadow,
            sticky=body.sticky,
        ),
        caller,
        owner,
        name,
        alias,
        body.version,
        body.note,
    )
    trail = trail_of(request)
    if outcome.promotion is not None:
        _noted(outcome.promotion, trail)
        trail.action = "promotion.request"
        response.status_code = 202
        return AliasSetOut(moved=False, promotion=PromotionOut.of(outcome.promotion))
    assert outcome.move is not None and outcome.alias is not None  # moved, not requested
    _noted(outcome.move, trail)
    platform.calls.forget()
    return AliasSetOut(moved=True, alias=AliasOut.of(outcome.alias))


@router.post(
    "/models/{owner}/{name}/promotions/{promotion_id}/approve",
    summary="Approve another principal's promotion request: the alias moves at once",
    openapi_extra=audited("promotion.approve"),
)
async def approve_promotion(
    request: Request,
    caller: ApproveAliases,
    owner: str,
    name: str,
    promotion_id: PromotionId,
    body: Decision = None,
) -> PromotionOut:
    platform, trail = platform_of(request), trail_of(request)
    trail.request_id = request.headers.get("x-request-id") or new_request_id()
    origin = Origin(
        trail.request_id,
        request.client.host if request.client else None,
        request.headers.get("x-forwarded-for"),
        request.headers.get("authorization"),
    )
    view, _move = await promotions.approve(
        platform, caller, owner, name, promotion_id, *_why(body), origin
    )
    _noted(view, trail)
    return PromotionOut.of(view)
