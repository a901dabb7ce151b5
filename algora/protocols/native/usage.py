"""``/api/v1/usage`` (calls and compute per organization, principal, key or model) and
``/api/v1/quotas`` (budgets that refuse calls past them); see :mod:`algora.registry.usage` and
:mod:`algora.registry.quotas`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from algora.auth.principals import Caller
from algora.gateway.openapi import UtcDateTime
from algora.gateway.permissions import AUTHENTICATED, Needs, PermissionRoute
from algora.platform import Platform
from algora.protocols.native.stats import moment_query
from algora.protocols.routing import NOTHING, Op, Takes, add_routes, each, one
from algora.protocols.wire import FromView
from algora.registry.quotas import Metric, Period, QuotaView, SubjectKind
from algora.registry.stats import parse_moment
from algora.registry.usage import By, UsageReport

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", route_class=PermissionRoute, tags=["usage"])
Authenticated = Annotated[Caller, Depends(Needs(AUTHENTICATED))]
ManageQuotas = Annotated[Caller, Depends(Needs("principals:manage", write=True))]
QuotaId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The quota's number.")]
_DEFAULT_WINDOW = timedelta(days=30)


class UsageRowOut(FromView):
    group: str = Field(description="The organization, principal, model (owner/name) or key id.")
    calls: int
    errors: int
    compute_seconds: float = Field(description="The workers' CPU seconds for these calls.")


class UsageOut(FromView):
    by: By
    since: UtcDateTime
    until: UtcDateTime
    rows: list[UsageRowOut]


class QuotaOut(FromView):
    id: int
    org: str | None
    key_id: str | None
    metric: Metric
    period: Period
    limit: float
    used: float = Field(description="In the current period, as this gateway counts it.")
    resets_at: UtcDateTime


class QuotaIn(BaseModel):
    metric: Metric
    period: Period
    limit: float = Field(gt=0, allow_inf_nan=False, description="Calls, or compute seconds.")


def _report(
    platform: Platform, caller: Caller, by: By, since: str | None, until: str | None
) -> UsageReport:
    now = datetime.now(UTC).replace(tzinfo=None)
    start = parse_moment(since, now) or now - _DEFAULT_WINDOW
    return platform.usage.report(caller, by, start, parse_moment(until, now) or now)


def _quotas(platform: Platform, caller: Caller) -> list[QuotaView]:
    return platform.quotas.list(caller)


async def _set_quota(
    platform: Platform, caller: Caller, kind: SubjectKind, subject: str, body: QuotaIn
) -> QuotaView:
    view = await asyncio.to_thread(
        platform.quotas.set, caller, kind, subject, body.metric, body.period, body.limit
    )
    await platform.quotas.reload(platform.usage)  # applies here at once; elsewhere within 5 s
    return next((q for q in platform.quotas.list(caller) if q.id == view.id), view)


async def _delete_quota(platform: Platform, caller: Caller, quota_id: int) -> None:
    await asyncio.to_thread(platform.quotas.delete, caller, quota_id)
    await platform.quotas.reload(platform.usage)


add_routes(
    router,
    lambda platform: platform,
    Op(
        "GET /usage",
        "usage_report",
        _report,
        Authenticated,
        one(UsageOut),
        "usage.read",
        query={
            "by": (Annotated[By, Query(description="What to sum the usage by.")], "org"),
            "since": moment_query("From (default: 30 days ago)"),
            "until": moment_query("To (default: now)"),
        },
        summary="Calls, errors and compute seconds per organization, principal, key or model",
    ),
    Op(
        "GET /quotas",
        "list_quotas",
        _quotas,
        Authenticated,
        each(QuotaOut),
        "quota.list",
        summary="The quotas of your keys and organizations (an admin: all), with their use",
    ),
    Op(
        "PUT /quotas/{kind}/{subject}",
        "set_quota",
        _set_quota,
        ManageQuotas,
        one(QuotaOut),
        "quota.set",
        body=Takes(QuotaIn, lambda body: (body,)),
        resource="quota/{kind}/{subject}/{body.metric}/{body.period}",
        types={"kind": SubjectKind, "subject": Annotated[str, Path(max_length=64)]},
        summary="Create or change the quota of an organization (org) or a key (key, by its "
        "id) (admin only)",
    ),
    Op(
        "DELETE /quotas/{quota_id}",
        "delete_quota",
        _delete_quota,
        ManageQuotas,
        NOTHING,
        "quota.delete",
        resource="quota/{quota_id}",
        types={"quota_id": QuotaId},
        summary="Remove a quota (admin only)",
        status_code=204,
    ),
)
