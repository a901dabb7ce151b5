"""The native management API under ``/api/v1``: models, versions, keys.

Principals, organizations and grants live in :mod:`algora.protocols.access`.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from algora.auth.bootstrap import create_key
from algora.auth.policy import can_manage_org
from algora.auth.principals import Caller, organization_limit
from algora.auth.ratelimit import Limit
from algora.auth.scopes import covers, validate_scopes
from algora.db.tables import ApiKey, KeyModelLimit, Model, Principal, Version, utcnow
from algora.errors import (
    BadRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
)
from algora.gateway.auditing import trail_of
from algora.gateway.deps import platform_of
from algora.gateway.permissions import AUTHENTICATED, Needs, PermissionRoute
from algora.settings import Settings

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", route_class=PermissionRoute)
# Each route's caller comes through the scope it needs; writers also take a rate-limit token.
ReadModels = Annotated[Caller, Depends(Needs("models:read"))]
Publish = Annotated[Caller, Depends(Needs("models:publish", write=True))]
ManageModels = Annotated[Caller, Depends(Needs("models:manage", write=True))]
Authenticated = Annotated[Caller, Depends(Needs(AUTHENTICATED))]
ReadKeys = Annotated[Caller, Depends(Needs("keys:manage"))]
WriteKeys = Annotated[Caller, Depends(Needs("keys:manage", write=True))]
_MODEL_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}/(?:[a-z0-9][a-z0-9_-]{0,63}|\*)\Z")


class ModelOut(BaseModel):
    owner: str
    name: str
    full_name: str
    description: str
    visibility: str
    tags: list[str]
    deprecated: bool
    created_at: datetime

    @classmethod
    def of(cls, model: Model) -> ModelOut:
        return cls(
            owner=model.owner.name,
            name=model.name,
            full_name=f"{model.owner.name}/{model.name}",
            description=model.description,
            visibility=model.visibility,
            tags=[str(t) for t in model.tags],
            deprecated=model.deprecated,
            created_at=model.created_at,
        )


class VersionOut(BaseModel):
    model: str
    version: str
    status: Literal["building", "ready", "failed"]
    content_hash: str | None
    environment_hash: str | None
    deprecated: bool
    failure_code: str | None
    failure_reason: str | None
    created_at: datetime
    ready_at: datetime | None
    entrypoint: str
    lineage: dict[str, Any]

    @classmethod
    def of(cls, model_name: str, version: Version) -> VersionOut:
        return cls(
            model=model_name,
            version=version.semver,
            status=version.status,  # type: ignore[arg-type]  # the column only holds these
            content_hash=version.content_hash,
            environment_hash=version.environment_hash,
            deprecated=version.deprecated,
            failure_code=version.failure_code,
            failure_reason=version.failure_reason,
            created_at=version.created_at,
            ready_at=version.ready_at,
            entrypoint=str(version.manifest.get("model", {}).get("entrypoint", "")),
            lineage=version.lineage,
        )


class ModelPatch(BaseModel):
    description: str | None = None
    deprecated: bool | None = None
    visibility: Literal["private", "organization", "public"] | None = None


class VersionPatch(BaseModel):
    deprecated: bool


class SchemaOut(BaseModel):
    input: dict[str, Any] | None
    output: dict[str, Any] | None


class LogOut(BaseModel):
    status: str
    text: str
    offset: int
    done: bool


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


# models -------------------------------------------------------------------------------------
@router.get("/models", response_model=list[ModelOut], tags=["models"])
async def list_models(request: Request, caller: ReadModels) -> list[ModelOut]:
    models = await asyncio.to_thread(platform_of(request).registry.list_models, caller)
    return [ModelOut.of(m) for m in models]


@router.get("/models/{owner}/{name}", response_model=ModelOut, tags=["models"])
async def get_model(request: Request, caller: ReadModels, owner: str, name: str) -> ModelOut:
    model = await asyncio.to_thread(platform_of(request).registry.get_model, caller, owner, name)
    return ModelOut.of(model)


@router.patch("/models/{owner}/{name}", response_model=ModelOut, tags=["models"])
async def update_model(
    request: Request, caller: ManageModels, owner: str, name: str, patch: ModelPatch
) -> ModelOut:
    platform = platform_of(request)
    model = await asyncio.to_thread(
        platform.registry.update_model, caller, owner, name, **patch.model_dump()
    )
    platform.calls.forget()
    return ModelOut.of(model)


# versions -----------------------------------------------------------------------------------
@router.get("/models/{owner}/{name}/versions", response_model=list[VersionOut], tags=["versions"])
async def list_versions(
    request: Request, caller: ReadModels, owner: str, name: str
) -> list[VersionOut]:
    versions = await asyncio.to_thread(
        platform_of(request).registry.list_versions, caller, owner, name
    )
    return [VersionOut.of(f"{owner}/{name}", v) for v in versions]


@router.post(
    "/models/{owner}/{name}/versions",
    response_model=VersionOut,
    status_code=202,
    tags=["versions"],
    summary="Publish a new version from a tar.gz or zip archive of the model folder",
)
async def publish_version(
    request: Request,
    caller: Publish,
    owner: str,
    name: str,
    bump: Annotated[Literal["major", "minor", "patch"] | None, Query()] = None,
    version: Annotated[str | None, Query(description="An explicit MAJOR.MINOR.PATCH")] = None,
    git_commit: Annotated[str | None, Query(max_length=64)] = None,
    git_dirty: Annotated[bool | None, Query()] = None,
    git_branch: Annotated[str | None, Query(max_length=255)] = None,
) -> VersionOut:
    platform = platform_of(request)
    if bump is not None and version is not None:
        raise BadRequest("give either bump or version, not both")
    # Refuse a caller who may not publish here before accepting a byte of the archive.
    await asyncio.to_thread(platform.registry.check_publish, caller, owner, name)
    limit = platform.settings.max_archive_bytes
    uploads = platform.settings.resolved_data_dir / "staging"
    fd, tmp_name = tempfile.mkstemp(dir=uploads, prefix="upload-")
    archive = os.fdopen(fd, "wb")
    try:
        size = 0
        with archive:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the archive is larger than the {limit}-byte limit")
                archive.write(chunk)
        if size == 0:
            raise BadRequest("the request body is empty: send the model folder as tar.gz or zip")
        lineage: dict[str, Any] = {}
        if git_commit:
            lineage["git"] = {"commit": git_commit, "dirty": bool(git_dirty), "branch": git_branch}
        version_id, _future = await asyncio.to_thread(
            platform.publisher.accept,
            caller,
            owner,
            name,
            Path(tmp_name),
            bump=bump,
            exact=version,
            lineage=lineage,
        )
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    row = await asyncio.to_thread(platform.registry.version_by_id, version_id)
    trail_of(request).version = row.semver
    return VersionOut.of(f"{owner}/{name}", row)


async def _version(request: Request, caller: Caller, owner: str, name: str, v: str) -> Version:
    return await asyncio.to_thread(
        platform_of(request).registry.get_version, caller, owner, name, v
    )


@router.get(
    "/models/{owner}/{name}/versions/{version}", response_model=VersionOut, tags=["versions"]
)
async def get_version(
    request: Request, caller: ReadModels, owner: str, name: str, version: str
) -> VersionOut:
    return VersionOut.of(f"{owner}/{name}", await _version(request, caller, owner, name, version))


@router.patch(
    "/models/{owner}/{name}/versions/{version}", response_model=VersionOut, tags=["versions"]
)
async def update_version(
    request: Request, caller: ManageModels, owner: str, name: str, version: str, patch: VersionPatch
) -> VersionOut:
    platform = platform_of(request)
    row = await asyncio.to_thread(
        platform.registry.deprecate_version, caller, owner, name, version, patch.deprecated
    )
    platform.calls.forget()
    return VersionOut.of(f"{owner}/{name}", row)


@router.get(
    "/models/{owner}/{name}/versions/{version}/lock",
    response_class=PlainTextResponse,
    tags=["versions"],
    summary="The locked requirements (uv, with hashes) the version's environment was built from",
)
async def get_lock(
    request: Request, caller: ReadModels, owner: str, name: str, version: str
) -> str:
    row = await _version(request, caller, owner, name, version)
    if row.environment is None:
        raise NotFound(f"version {row.semver} has no environment ({row.status})")
    return row.environment.lock


@router.get(
    "/models/{owner}/{name}/versions/{version}/schema", response_model=SchemaOut, tags=["versions"]
)
async def get_schema(
    request: Request, caller: ReadModels, owner: str, name: str, version: str
) -> SchemaOut:
    row = await _version(request, caller, owner, name, version)
    return SchemaOut(input=row.input_schema, output=row.output_schema)


@router.get("/models/{owner}/{name}/versions/{version}/lineage", tags=["versions"])
async def get_lineage(
    request: Request, caller: ReadModels, owner: str, name: str, version: str
) -> dict[str, Any]:
    row = await _version(request, caller, owner, name, version)
    return {
        "content_hash": row.content_hash,
        "archive_hash": row.archive_hash,
        "environment_hash": row.environment_hash,
        **row.lineage,
    }


@router.get(
    "/models/{owner}/{name}/versions/{version}/sbom",
    response_class=Response,
    tags=["versions"],
    summary="The CycloneDX JSON SBOM of the version's environment (its locked packages)",
)
async def get_sbom(
    request: Request, caller: ReadModels, owner: str, name: str, version: str
) -> Response:
    row = await _version(request, caller, owner, name, version)
    digest = row.lineage.get("sbom")
    if not isinstance(digest, str):
        raise NotFound(f"version {row.semver} has no SBOM ({row.status})")

    def read() -> bytes:
        with platform_of(request).store.open(digest) as blob:
            return blob.read()

    return Response(await asyncio.to_thread(read), media_type="application/vnd.cyclonedx+json")


@router.get(
    "/models/{owner}/{name}/versions/{version}/log", response_model=LogOut, tags=["versions"]
)
async def get_build_log(
    request: Request,
    caller: ReadModels,
    owner: str,
    name: str,
    version: str,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> LogOut:
    row = await _version(request, caller, owner, name, version)
    text, new_offset = platform_of(request).publisher.logs.read(row.id, offset)
    if not text and row.status != "building" and offset == 0:
        text, new_offset = row.build_log, len(row.build_log.encode())
    return LogOut(status=row.status, text=text, offset=new_offset, done=row.status != "building")


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
