"""The native management API under ``/api/v1``: who am I, keys, their rate limits."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, BeforeValidator, Field

from algora.auth.keyring import Keyring, LimitChange, ModelLimitView, NewKeyView
from algora.auth.principals import Caller
from algora.gateway.inputs import MAX_INT64
from algora.gateway.openapi import UtcDateTime
from algora.gateway.permissions import AUTHENTICATED, Needs, PermissionRoute, audited
from algora.protocols.routing import NOTHING, Op, Takes, add_routes, each, one
from algora.protocols.wire import FromView

__all__ = ["LimitsIn", "router"]

router = APIRouter(prefix="/api/v1", route_class=PermissionRoute, tags=["keys"])
Authenticated = Annotated[Caller, Depends(Needs(AUTHENTICATED))]
ReadKeys = Annotated[Caller, Depends(Needs("keys:manage"))]
WriteKeys = Annotated[Caller, Depends(Needs("keys:manage", write=True))]
ManagedAccount = Annotated[
    str | None, Query(max_length=64, description="A service account you manage.")
]


class WhoAmI(BaseModel):
    name: str
    is_admin: bool
    key_id: str


class KeyIn(BaseModel):
    name: str = Field(default="", max_length=128)
    scopes: list[str] | None = Field(
        default=None,
        max_length=50,
        description="What the key may do (see algora.auth.scopes); default: the creating key's.",
    )
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)
    model_calls_only: bool = Field(
        default=False, description="Usable only by calls made from inside models."
    )
    principal: str | None = Field(
        default=None,
        max_length=64,
        description="A service account you manage (an admin: anyone); default: yourself.",
    )


def _whole(value: object) -> object:
    """JSON has one kind of number: 65536.0 is the count 65536 (``true`` stays no count)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Burst = Annotated[int, Field(ge=1, le=MAX_INT64, strict=True), BeforeValidator(_whole)]
"""Calls a limit lets through at once: a whole number of at least one (that the database can
hold), never a boolean."""


class ModelLimitIn(FromView):
    model: str = Field(description="``owner/name``, or ``owner/*`` for all of an owner's models")
    rate_per_second: float = Field(gt=0, allow_inf_nan=False, strict=True)
    burst: Burst | None = Field(default=None, description="Default: one second's worth.")

    def view(self) -> ModelLimitView:
        return ModelLimitView(self.model, self.rate_per_second, self.burst)


class LimitsIn(BaseModel):
    """A rate limit; a field left out is unchanged, a null one is removed."""

    rate_per_second: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, strict=True
    )  # strict: `true` is no rate (pydantic reads it as 1.0 otherwise)
    burst: Burst | None = None

    def change(self) -> LimitChange:
        return LimitChange(**self.model_dump(include=self.model_fields_set))


ModelLimitsIn = Annotated[list[ModelLimitIn], Body(max_length=100)]


class KeyOut(FromView):
    key_id: str
    name: str
    created_at: UtcDateTime
    last_used_at: UtcDateTime | None
    revoked: bool
    rate_per_second: float | None = None
    burst: int | None = None
    principal: str = ""
    scopes: list[str] = Field(default_factory=list)
    expires_at: UtcDateTime | None = None
    last_used_address: str | None = None
    model_calls_only: bool = False


class NewKeyOut(BaseModel):
    key_id: str
    key: str = Field(description="The secret: shown once, stored only as a hash.")
    principal: str = ""
    scopes: list[str] = Field(default_factory=list)
    expires_at: UtcDateTime | None = None

    @classmethod
    def of(cls, new: NewKeyView) -> NewKeyOut:
        return cls(
            key_id=new.key_id,
            key=new.secret,
            principal=new.principal,
            scopes=list(new.scopes),
            expires_at=new.expires_at,
        )


# who, keys ---------------------------------------------------------------------------------
@router.get("/whoami", openapi_extra=audited("auth.login", always=True))
async def whoami(caller: Authenticated) -> WhoAmI:
    return WhoAmI(name=caller.name, is_admin=caller.is_admin, key_id=caller.key_id)


add_routes(
    router,
    lambda platform: platform.keyring,
    Op(
        "GET /keys",
        "list_keys",
        Keyring.list_keys,
        ReadKeys,
        each(KeyOut),
        "key.list",
        query={"principal": (ManagedAccount, None)},
    ),
    Op(
        "POST /keys",
        "create_own_key",
        Keyring.create_key,
        WriteKeys,
        one(NewKeyOut),
        "key.create",
        body=Takes(
            KeyIn, lambda body: (body.name,), lambda body: body.model_dump(exclude={"name"})
        ),
        noted=lambda new, trail: setattr(trail, "resource", f"key/{new.key_id}"),
        summary="Create a key (yours or a managed service account's); the secret is shown once",
        status_code=201,
    ),
    Op(
        "DELETE /keys/{key_id}",
        "revoke_key",
        Keyring.revoke_key,
        WriteKeys,
        NOTHING,
        "key.revoke",
        status_code=204,
    ),
    # rate limits
    Op(
        "PATCH /keys/{key_id}",
        "limit_key",
        Keyring.limit_key,
        WriteKeys,
        one(KeyOut),
        "key.limit",
        body=Takes(LimitsIn, lambda body: (body.change(),)),
        resource="key/{key_id}",
        summary="Set a key's own rate limit (owners may tighten it; only an admin may loosen it)",
    ),
    Op(
        "GET /keys/{key_id}/model-limits",
        "get_model_limits",
        Keyring.model_limits,
        ReadKeys,
        each(ModelLimitIn),
        "key.model_limits_read",
    ),
    Op(
        "PUT /keys/{key_id}/model-limits",
        "set_model_limits",
        Keyring.set_model_limits,
        WriteKeys,
        each(ModelLimitIn),
        "key.model_limits",
        body=Takes(ModelLimitsIn, lambda body: ([limit.view() for limit in body],)),
        resource="key/{key_id}",
        summary="Replace a key's per-model rate limits (each applies on top of the key's own)",
    ),
)
