"""The native management API under ``/api/v1``: who am I, keys, their rate limits."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from algora.auth.bootstrap import create_key
from algora.auth.policy import can_manage_org
from algora.auth.principals import Caller, organization_limit
from algora.auth.ratelimit import Limit
from algora.auth.scopes import covers, validate_scopes
from algora.db.tables import ApiKey, KeyModelLimit, Principal, utcnow
from algora.errors import (
    BadRequest,
    NotFound,
    PermissionDenied,
)
from algora.gateway.auditing import trail_of
from algora.gateway.deps import platform_of
from algora.gateway.permissions import AUTHENTICATED, Needs, PermissionRoute
from algora.settings import Settings

__all__ = ["LimitsIn", "router"]

router = APIRouter(prefix="/api/v1", route_class=PermissionRoute)
Authenticated = Annotated[Caller, Depends(Needs(AUTHENTICATED))]
ReadKeys = Annotated[Caller, Depends(Needs("keys:manage"))]
WriteKeys = Annotated[Caller, Depends(Needs("keys:manage", write=True))]
_MODEL_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}/(?:[a-z0-9][a-z0-9_-]{0,63}|\*)\Z")


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
    rate_per_second: float = Field(gt=0, allow_inf_nan=False)
    burst: int | None = Field(default=None, ge=1, description="Default: one second's worth.")


class LimitsIn(BaseModel):
    """A rate limit; a field left out is unchanged, a null one is removed."""

    rate_per_second: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    burst: int | None = Field(default=None, ge=1)


class KeyOut(BaseModel):
    key_id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool
    rate_per_second: float | None = None
    burst: int | None = None
    principal: str = ""
    scopes: list[str] = Field(default_factory=list)
    expires_at: datetime | None = None
    last_used_address: str | None = None
    model_calls_only: bool = False


class NewKeyOut(BaseModel):
    key_id: str
    key: str = Field(description="The secret: shown once, stored only as a hash.")
    principal: str = ""
    scopes: list[str] = Field(default_factory=list)
    expires_at: datetime | None = None


# who, keys ---------------------------------------------------------------------------------
@router.get("/whoami", response_model=WhoAmI, tags=["keys"])
async def whoami(caller: Authenticated) -> WhoAmI:
    return WhoAmI(name=caller.name, is_admin=caller.is_admin, key_id=caller.key_id)


def may_manage_keys_of(caller: Caller, principal: Principal) -> bool:
    """Own keys; an admin any; a service account's: its owner, or its owning organization's
    admins and owners."""
    if caller.is_admin or principal.id == caller.principal_id:
        return True
    if principal.kind != "service" or principal.owner_id is None:
        return False
    return principal.owner_id == caller.principal_id or can_manage_org(caller, principal.owner_id)


def _principal_for_keys(session: Session, caller: Caller, name: str | None) -> Principal:
    if name is None:
        principal = session.get(Principal, caller.principal_id)
    else:
        principal = session.scalars(select(Principal).where(Principal.name == name)).first()
    if principal is None or not may_manage_keys_of(caller, principal):
        raise NotFound(f"no principal '{name}' whose keys you manage")
    return principal


@router.get("/keys", response_model=list[KeyOut], tags=["keys"])
async def list_keys(
    request: Request,
    caller: ReadKeys,
    principal: Annotated[
        str | None, Query(max_length=64, description="A service account you manage.")
    ] = None,
) -> list[KeyOut]:
    def load() -> list[KeyOut]:
        with platform_of(request).sessions() as session:
            owner = _principal_for_keys(session, caller, principal)
            keys = session.scalars(select(ApiKey).where(ApiKey.principal_id == owner.id)).all()
            return [_key_out(k) for k in keys]

    return await asyncio.to_thread(load)


@router.post(
    "/keys",
    response_model=NewKeyOut,
    status_code=201,
    tags=["keys"],
    summary="Create a key (yours or a managed service account's); the secret is shown once",
)
async def create_own_key(request: Request, caller: WriteKeys, body: KeyIn) -> NewKeyOut:
    scopes = list(caller.scopes) if body.scopes is None else validate_scopes(body.scopes)
    for scope in scopes:
        if not covers(caller.scopes, scope, is_admin=caller.is_admin):
            raise PermissionDenied(
                f"this key cannot hand out the '{scope}' scope: a new key may only narrow "
                "the scopes of the key that creates it"
            )
    expires_at = None
    if body.expires_in_days is not None:
        expires_at = utcnow() + timedelta(days=body.expires_in_days)

    def create() -> NewKeyOut:
        with platform_of(request).sessions() as session:
            principal = _principal_for_keys(session, caller, body.principal)
            new = create_key(
                session,
                principal,
                body.name,
                scopes=scopes,
                expires_at=expires_at,
                model_calls_only=body.model_calls_only,
            )
            session.commit()
            trail_of(request).resource = f"key/{new.key_id}"
            return NewKeyOut(
                key_id=new.key_id,
                key=new.secret,
                principal=principal.name,
                scopes=scopes,
                expires_at=expires_at,
            )

    return await asyncio.to_thread(create)


@router.delete("/keys/{key_id}", status_code=204, tags=["keys"])
async def revoke_key(request: Request, caller: WriteKeys, key_id: str) -> None:
    platform = platform_of(request)

    def revoke() -> None:
        with platform.sessions() as session:
            key = _owned_key(session, caller, key_id)
            key.revoked_at = key.revoked_at or utcnow()
            session.commit()

    await asyncio.to_thread(revoke)
    platform.authenticator.forget()


# rate limits --------------------------------------------------------------------------------
def _looser(new: Limit | None, current: Limit | None) -> bool:
    """True when ``new`` allows more than ``current`` (None: no limit at all)."""
    if current is None:
        return False
    return new is None or new.rate > current.rate or new.burst > current.burst


def _owned_key(session: Session, caller: Caller, key_id: str) -> ApiKey:
    key = session.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).first()
    if key is None or not may_manage_keys_of(caller, key.principal):
        raise NotFound(f"no key '{key_id}'")
    return key


def _inherited(session: Session, principal: Principal, settings: Settings) -> Limit | None:
    """The limit a key without its own gets: its principal's, its organization's, or the
    server's default."""
    return (
        Limit.of(principal.rate_per_second, principal.burst)
        or organization_limit(session, principal)
        or Limit.of(settings.default_rate_per_second, settings.default_burst)
    )


def _key_out(key: ApiKey) -> KeyOut:
    return KeyOut(
        key_id=key.key_id,
        name=key.name,
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        revoked=key.revoked_at is not None,
        rate_per_second=key.rate_per_second,
        burst=key.burst,
        principal=key.principal.name,
        scopes=[str(s) for s in key.scopes],
        expires_at=key.expires_at,
        last_used_address=key.last_used_address,
        model_calls_only=key.model_calls_only,
    )


@router.patch(
    "/keys/{key_id}",
    response_model=KeyOut,
    tags=["keys"],
    summary="Set a key's own rate limit (owners may tighten it; only an admin may loosen it)",
)
async def limit_key(request: Request, caller: WriteKeys, key_id: str, body: LimitsIn) -> KeyOut:
    platform = platform_of(request)
    trail_of(request).resource = f"key/{key_id}"

    def change() -> KeyOut:
        with platform.sessions() as session:
            key = _owned_key(session, caller, key_id)
            rate = key.rate_per_second
            burst = key.burst
            if "rate_per_second" in body.model_fields_set:
                rate = body.rate_per_second
            if "burst" in body.model_fields_set:
                burst = body.burst
            if not caller.is_admin:
                inherited = _inherited(session, key.principal, platform.settings)
                current = Limit.of(key.rate_per_second, key.burst) or inherited
                if _looser(Limit.of(rate, burst) or inherited, current):
                    raise PermissionDenied(
                        "only an admin may loosen a key's rate limit; you may tighten it"
                    )
            key.rate_per_second, key.burst = rate, burst
            session.commit()
            return _key_out(key)

    out = await asyncio.to_thread(change)
    platform.authenticator.forget()
    return out


def _model_limits(session: Session, key: ApiKey) -> list[KeyModelLimit]:
    statement = select(KeyModelLimit).where(KeyModelLimit.key_id == key.id)
    return list(session.scalars(statement.order_by(KeyModelLimit.pattern)).all())


def _model_limits_out(rows: list[KeyModelLimit]) -> list[ModelLimitIn]:
    return [
        ModelLimitIn(model=r.pattern, rate_per_second=r.rate_per_second, burst=r.burst)
        for r in rows
    ]


@router.get("/keys/{key_id}/model-limits", response_model=list[ModelLimitIn], tags=["keys"])
async def get_model_limits(request: Request, caller: ReadKeys, key_id: str) -> list[ModelLimitIn]:
    def load() -> list[ModelLimitIn]:
        with platform_of(request).sessions() as session:
            return _model_limits_out(_model_limits(session, _owned_key(session, caller, key_id)))

    return await asyncio.to_thread(load)


@router.put(
    "/keys/{key_id}/model-limits",
    response_model=list[ModelLimitIn],
    tags=["keys"],
    summary="Replace a key's per-model rate limits (each applies on top of the key's own)",
)
async def set_model_limits(
    request: Request,
    caller: WriteKeys,
    key_id: str,
    body: Annotated[list[ModelLimitIn], Body(max_length=100)],
) -> list[ModelLimitIn]:
    platform = platform_of(request)
    trail_of(request).resource = f"key/{key_id}"
    wanted: dict[str, Limit] = {}
    for entry in body:
        if not _MODEL_PATTERN.match(entry.model):
            raise BadRequest(f"'{entry.model}' is not 'owner/name' or 'owner/*'")
        if entry.model in wanted:
            raise BadRequest(f"'{entry.model}' is given twice")
        limit = Limit.of(entry.rate_per_second, entry.burst)
        assert limit is not None  # the rate is required
        wanted[entry.model] = limit

    def replace() -> list[ModelLimitIn]:
        with platform.sessions() as session:
            key = _owned_key(session, caller, key_id)
            rows = _model_limits(session, key)
            if not caller.is_admin:
                for row in rows:
                    if _looser(wanted.get(row.pattern), Limit.of(row.rate_per_second, row.burst)):
                        raise PermissionDenied(
                            f"only an admin may loosen or remove the limit for '{row.pattern}'"
                        )
            for row in rows:
                session.delete(row)
            session.flush()
            for entry in body:
                session.add(
                    KeyModelLimit(
                        key_id=key.id,
                        pattern=entry.model,
                        rate_per_second=entry.rate_per_second,
                        burst=entry.burst,
                    )
                )
            session.commit()
            return _model_limits_out(_model_limits(session, key))

    out = await asyncio.to_thread(replace)
    platform.authenticator.forget()
    return out
