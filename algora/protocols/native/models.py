"""The native management API under ``/api/v1``: models and versions.

Keys live in :mod:`algora.protocols.native.keys`; principals, organizations and grants in
:mod:`algora.protocols.native.access`.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel

from algora.auth.principals import Caller
from algora.db.tables import Model, Version
from algora.errors import (
    BadRequest,
    NotFound,
    PayloadTooLarge,
)
from algora.gateway.auditing import trail_of
from algora.gateway.deps import platform_of
from algora.gateway.permissions import Needs, PermissionRoute

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", route_class=PermissionRoute)
# Each route's caller comes through the scope it needs; writers also take a rate-limit token.
ReadModels = Annotated[Caller, Depends(Needs("models:read"))]
Publish = Annotated[Caller, Depends(Needs("models:publish", write=True))]
ManageModels = Annotated[Caller, Depends(Needs("models:manage", write=True))]


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
