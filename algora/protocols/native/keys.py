"""The native management API under ``/api/v1``: who am I, keys, their rate limits."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, Field

from algora.auth.keyring import KeyView, LimitChange, ModelLimitView
from algora.auth.principals import Caller
from algora.gateway.auditing import trail_of
from algora.gateway.deps import platform_of
from algora.gateway.openapi import UtcDateTime
from algora.gateway.permissions import AUTHENTICATED, Needs, PermissionRoute, audited

__all__ = ["LimitsIn", "router"]

router = APIRouter(prefix="/api/v1", route_class=PermissionRoute)
Authenticated = Annotated[Caller, Depends(Needs(AUTHENTICATED))]
ReadKeys = Annotated[Caller, Depends(Needs("keys:manage"))]
WriteKeys = Annotated[Caller, Depends(Needs("keys:manage", write=True))]


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


class ModelLimitIn(BaseModel):
    model: str = Field(description="``owner/name``, or ``owner/*`` for all of an owner's models")
    rate_per_second: float = Field(gt=0, allow_inf_nan=False, strict=True)
    burst: int | None = Field(
        default=None, ge=1, strict=True, description="Default: one second's worth."
    )

    @classmethod
    def of(cls, view: ModelLimitView) -> ModelLimitIn:
        return cls(model=view.model, rate_per_second=view.rate_per_second, burst=view.burst)

    def view(self) -> ModelLimitView:
        return ModelLimitView(self.model, self.rate_per_second, self.burst)


class LimitsIn(BaseModel):
    """A rate limit; a field left out is unchanged, a null one is removed."""

    rate_per_second: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, strict=True
    )  # strict: `true` is no rate (pydantic reads it as 1.0 otherwise)
    burst: int | None = Field(default=None, ge=1, strict=True)

    def change(self) -> LimitChange:
        return LimitChange(**self.model_dump(include=self.model_fields_set))


class KeyOut(BaseModel):
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

    @classmethod
    def of(cls, view: KeyView) -> KeyOut:
        return cls.model_validate(view, from_attributes=True)  # the same fields, by name


class NewKeyOut(BaseModel):
    key_id: str
    key: str = Field(description="The secret: shown once, stored only as a hash.")
    principal: str = ""
    scopes: list[str] = Field(default_factory=list)
    expires_at: UtcDateTime | None = None


# who, keys ---------------------------------------------------------------------------------
@router.get("/whoami", tags=["keys"], openapi_extra=audited("auth.login", always=True))
async def whoami(caller: Authenticated) -> WhoAmI:
    return WhoAmI(name=caller.name, is_admin=caller.is_admin, key_id=caller.key_id)


@router.get("/keys", response_model=list[KeyOut], tags=["keys"], openapi_extra=audited("key.list"))
async def list_keys(
    request: Request,
    caller: ReadKeys,
    principal: Annotated[
        str | None, Query(max_length=64, description="A service account you manage.")
    ] = None,
) -> list[KeyOut]:
    views = await asyncio.to_thread(platform_of(request).keyring.list_keys, caller, principal)
    return [KeyOut.of(v) for v in views]


@router.post(
    "/keys",
    status_code=201,
    tags=["keys"],
    summary="Create a key (yours or a managed service account's); the secret is shown once",
    openapi_extra=audited("key.create"),
)
async def create_own_key(request: Request, caller: WriteKeys, body: KeyIn) -> NewKeyOut:
    new = await asyncio.to_thread(
        platform_of(request).keyring.create_key,
        caller,
        body.name,
        scopes=body.scopes,
        expires_in_days=body.expires_in_days,
        model_calls_only=body.model_calls_only,
        principal=body.principal,
    )
    trail_of(request).resource = f"key/{new.key_id}"
    return NewKeyOut(
        key_id=new.key_id,
        key=new.secret,
        principal=new.principal,
        scopes=list(new.scopes),
        expires_at=new.expires_at,
    )


@router.delete(
    "/keys/{key_id}", status_code=204, tags=["keys"], openapi_extra=audited("key.revoke")
)
async def revoke_key(request: Request, caller: WriteKeys, key_id: str) -> None:
    await asyncio.to_thread(platform_of(request).keyring.revoke_key, caller, key_id)


# rate limits --------------------------------------------------------------------------------
@router.patch(
    "/keys/{key_id}",
    tags=["keys"],
    summary="Set a key's own rate limit (owners may tighten it; only an admin may loosen it)",
    openapi_extra=audited("key.limit"),
)
async def limit_key(request: Request, caller: WriteKeys, key_id: str, body: LimitsIn) -> KeyOut:
    trail_of(request).resource = f"key/{key_id}"
    keyring = platform_of(request).keyring
    return KeyOut.of(await asyncio.to_thread(keyring.limit_key, caller, key_id, body.change()))


@router.get(
    "/keys/{key_id}/model-limits", tags=["keys"], openapi_extra=audited("key.model_limits_read")
)
async def get_model_limits(request: Request, caller: ReadKeys, key_id: str) -> list[ModelLimitIn]:
    views = await asyncio.to_thread(platform_of(request).keyring.model_limits, caller, key_id)
    return [ModelLimitIn.of(v) for v in views]


@router.put(
    "/keys/{key_id}/model-limits",
    tags=["keys"],
    summary="Replace a key's per-model rate limits (each applies on top of the key's own)",
    openapi_extra=audited("key.model_limits"),
)
async def set_model_limits(
    request: Request,
    caller: WriteKeys,
    key_id: str,
    body: Annotated[list[ModelLimitIn], Body(max_length=100)],
) -> list[ModelLimitIn]:
    trail_of(request).resource = f"key/{key_id}"
    views = await asyncio.to_thread(
        platform_of(request).keyring.set_model_limits, caller, key_id, [e.view() for e in body]
    )
    return [ModelLimitIn.of(v) for v in views]
