"""Payload sampling (see :mod:`algora.registry.sampling`): a model's sampling rule
(``GET|PUT|DELETE /api/v1/models/{owner}/{name}/sampling``), the index of its samples and one
sample's stored payloads (``GET .../samples``, ``GET .../samples/{request_id}``). Only the
model's managers (``models:manage`` and manage rights); reads of samples are audited too."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from algora.auth.principals import Caller
from algora.gateway.openapi import UtcDateTime
from algora.gateway.permissions import Needs, PermissionRoute
from algora.protocols.native.stats import moment_query
from algora.protocols.routing import NOTHING, Op, Takes, add_routes, each, one
from algora.protocols.wire import FromView
from algora.registry.sampling import (
    DEFAULT_MAX_BYTES,
    DEFAULT_RATE,
    MAX_LIMIT,
    MAX_SAMPLE_BYTES,
    SampleView,
    Sampling,
    StoredSample,
)
from algora.registry.stats import parse_moment

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", route_class=PermissionRoute, tags=["sampling"])
ReadManaged = Annotated[Caller, Depends(Needs("models:manage"))]
WriteManaged = Annotated[Caller, Depends(Needs("models:manage", write=True))]
FieldName = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class SamplingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate: float = Field(
        default=DEFAULT_RATE, gt=0, le=1, description="The share of calls sampled (0 < r <= 1)."
    )
    max_bytes: int = Field(
        default=DEFAULT_MAX_BYTES,
        ge=1,
        le=MAX_SAMPLE_BYTES,
        description="The bytes kept of each input and output; a larger one is cut and marked.",
    )
    redact: list[FieldName] = Field(
        default_factory=list,
        max_length=64,
        description="JSON field names whose values are replaced, at any depth, before storing.",
    )
    enabled: bool = True


class SamplingOut(FromView):
    model: str
    enabled: bool
    rate: float
    max_bytes: int
    redact: list[str]
    updated_at: UtcDateTime | None
    updated_by: str | None


class SampleOut(FromView):
    request_id: str
    version: str
    alias: str | None
    caller: str
    created_at: UtcDateTime
    input_type: str
    output_type: str | None = Field(description="Null when the call failed.")
    input_bytes: int
    output_bytes: int
    truncated: bool = Field(description="Whether the input or output was cut at max_bytes.")
    error_code: str | None


class PayloadOut(BaseModel):
    content_type: str
    bytes: int = Field(description="The payload's size as the call had it.")
    encoding: str = Field(description="json, text, base64, or withheld (unparsable JSON).")
    data: Any
    truncated: bool


class StoredSampleOut(BaseModel):
    sample: SampleOut
    input: PayloadOut
    output: PayloadOut | None

    @classmethod
    def of(cls, stored: StoredSample) -> StoredSampleOut:
        return cls(
            sample=SampleOut.of(stored.sample),
            input=PayloadOut(**stored.input),
            output=PayloadOut(**stored.output) if stored.output is not None else None,
        )


def _samples(
    sampling: Sampling,
    caller: Caller,
    owner: str,
    name: str,
    since: str | None,
    until: str | None,
    version: str | None,
    limit: int,
) -> list[SampleView]:
    now = datetime.now(UTC).replace(tzinfo=None)
    return sampling.samples(
        caller, owner, name, parse_moment(since, now), parse_moment(until, now), version, limit
    )


_MODEL = "/models/{owner}/{name}"
add_routes(
    router,
    lambda platform: platform.sampling,
    Op(
        f"GET {_MODEL}/sampling",
        "get_sampling",
        Sampling.rule,
        ReadManaged,
        one(SamplingOut),
        "model.sampling.read",
        summary="The model's payload sampling rule (off by default)",
    ),
    Op(
        f"PUT {_MODEL}/sampling",
        "set_sampling",
        Sampling.set_rule,
        WriteManaged,
        one(SamplingOut),
        "model.sampling.set",
        body=Takes(SamplingIn, lambda b: (b.rate, b.max_bytes, b.redact, b.enabled)),
        summary="Sample a share of the model's calls: inputs and outputs kept in the store",
    ),
    Op(
        f"DELETE {_MODEL}/sampling",
        "delete_sampling",
        Sampling.remove_rule,
        WriteManaged,
        NOTHING,
        "model.sampling.delete",
        status_code=204,
        summary="Stop sampling the model's calls (samples taken stay until they expire)",
    ),
    Op(
        f"GET {_MODEL}/samples",
        "list_samples",
        _samples,
        ReadManaged,
        each(SampleOut),
        "model.samples.list",
        always=True,
        query={
            "since": moment_query("From (the beginning)"),
            "until": moment_query("To (now)"),
            "version": (Annotated[str | None, Query(max_length=40)], None),
            "limit": (Annotated[int, Query(ge=1, le=MAX_LIMIT)], 100),
        },
        summary="The model's payload samples, newest first",
    ),
    Op(
        f"GET {_MODEL}/samples/{{request_id}}",
        "read_sample",
        Sampling.sample,
        ReadManaged,
        one(StoredSampleOut),
        "model.samples.read",
        always=True,
        summary="One sampled call's stored input and output",
    ),
)
