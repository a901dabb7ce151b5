"""The native management API under ``/api/v1``: models and versions.

Keys live in :mod:`algora.protocols.native.keys`; principals, organizations and grants in
:mod:`algora.protocols.native.access`.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel

from algora.auth.principals import Caller
from algora.gateway.auditing import trail_of
from algora.gateway.deps import platform_of
from algora.gateway.openapi import UtcDateTime
from algora.gateway.permissions import Needs, PermissionRoute, audited
from algora.publishing.uploads import GitInfo
from algora.registry.views import ModelView, VersionView

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
    created_at: UtcDateTime

    @classmethod
    def of(cls, model: ModelView) -> ModelOut:
        return cls.model_validate(model, from_attributes=True)  # the same fields, by name


class VersionOut(BaseModel):
    model: str
    version: str
    status: Literal["building", "ready", "failed"]
    content_hash: str | None
    environment_hash: str | None
    deprecated: bool
    failure_code: str | None
    failure_reason: str | None
    created_at: UtcDateTime
    ready_at: UtcDateTime | None
    entrypoint: str
    lineage: dict[str, Any]

    @classmethod
    def of(cls, version: VersionView) -> VersionOut:
        fields = {name: getattr(version, name) for name in cls.model_fields if name != "version"}
        return cls.model_validate({**fields, "version": version.semver})


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
@router.get(
    "/models", response_model=list[ModelOut], tags=["models"], openapi_extra=audited("model.list")
)
async def list_models(request: Request, caller: ReadModels) -> list[ModelOut]:
    models = await asyncio.to_thread(platform_of(request).catalog.list_models, caller)
    return [ModelOut.of(m) for m in models]


@router.get("/models/{owner}/{name}", tags=["models"], openapi_extra=audited("model.read"))
async def get_model(request: Request, caller: ReadModels, owner: str, name: str) -> ModelOut:
    model = await asyncio.to_thread(platform_of(request).catalog.get_model, caller, owner, name)
    return ModelOut.of(model)


@router.patch("/models/{owner}/{name}", tags=["models"], openapi_extra=audited("model.update"))
async def update_model(
    request: Request, caller: ManageModels, owner: str, name: str, patch: ModelPatch
) -> ModelOut:
    platform = platform_of(request)
    model = await asyncio.to_thread(
        platform.catalog.update_model, caller, owner, name, **patch.model_dump()
    )
    platform.calls.forget()
    return ModelOut.of(model)


# versions -----------------------------------------------------------------------------------
@router.get(
    "/models/{owner}/{name}/versions", tags=["versions"], openapi_extra=audited("version.list")
)
async def list_versions(
    request: Request, caller: ReadModels, owner: str, name: str
) -> list[VersionOut]:
    versions = await asyncio.to_thread(
        platform_of(request).catalog.list_versions, caller, owner, name
    )
    return [VersionOut.of(v) for v in versions]


@router.post(
    "/models/{owner}/{name}/versions",
    status_code=202,
    tags=["versions"],
    summary="Publish a new version from a tar.gz or zip archive of the model folder",
    openapi_extra=audited("version.publish"),
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
    uploads = platform_of(request).uploads
    # Refused before a byte of the archive is accepted when the caller may not publish here.
    upload = await asyncio.to_thread(uploads.begin, caller, owner, name, bump=bump, exact=version)
    try:
        async for chunk in request.stream():
            upload.write(chunk)
        git = GitInfo(git_commit, git_dirty, git_branch)
        row = await asyncio.to_thread(uploads.publish, caller, upload, git)
    finally:
        upload.discard()
    trail_of(request).version = row.semver
    return VersionOut.of(row)


@router.get(
    "/models/{owner}/{name}/versions/{version}",
    tags=["versions"],
    openapi_extra=audited("version.read"),
)
async def get_version(
    request: Request, caller: ReadModels, owner: str, name: str, version: str
) -> VersionOut:
    catalog = platform_of(request).catalog
    return VersionOut.of(await asyncio.to_thread(catalog.get_version, caller, owner, name, version))


@router.patch(
    "/models/{owner}/{name}/versions/{version}",
    tags=["versions"],
    openapi_extra=audited("version.deprecate"),
)
async def update_version(
    request: Request, caller: ManageModels, owner: str, name: str, version: str, patch: VersionPatch
) -> VersionOut:
    platform = platform_of(request)
    row = await asyncio.to_thread(
        platform.catalog.deprecate_version, caller, owner, name, version, patch.deprecated
    )
    platform.calls.forget()
    return VersionOut.of(row)


@router.get(
    "/models/{owner}/{name}/versions/{version}/lock",
    response_class=PlainTextResponse,
    tags=["versions"],
    summary="The locked requirements (uv, with hashes) the version's environment was built from",
    openapi_extra=audited("version.lock"),
)
async def get_lock(
    request: Request, caller: ReadModels, owner: str, name: str, version: str
) -> str:
    catalog = platform_of(request).catalog
    return await asyncio.to_thread(catalog.lock, caller, owner, name, version)


@router.get(
    "/models/{owner}/{name}/versions/{version}/schema",
    tags=["versions"],
    openapi_extra=audited("version.schema"),
)
async def get_schema(
    request: Request, caller: ReadModels, owner: str, name: str, version: str
) -> SchemaOut:
    catalog = platform_of(request).catalog
    row = await asyncio.to_thread(catalog.get_version, caller, owner, name, version)
    return SchemaOut(input=row.input_schema, output=row.output_schema)


@router.get(
    "/models/{owner}/{name}/versions/{version}/lineage",
    tags=["versions"],
    openapi_extra=audited("version.lineage"),
)
async def get_lineage(
    request: Request, caller: ReadModels, owner: str, name: str, version: str
) -> dict[str, Any]:
    catalog = platform_of(request).catalog
    return await asyncio.to_thread(catalog.lineage, caller, owner, name, version)


@router.get(
    "/models/{owner}/{name}/versions/{version}/sbom",
    response_class=Response,
    tags=["versions"],
    summary="The CycloneDX JSON SBOM of the version's environment (its locked packages)",
    openapi_extra=audited("version.sbom"),
)
async def get_sbom(
    request: Request, caller: ReadModels, owner: str, name: str, version: str
) -> Response:
    catalog = platform_of(request).catalog
    sbom = await asyncio.to_thread(catalog.sbom, caller, owner, name, version)
    return Response(sbom, media_type="application/vnd.cyclonedx+json")


@router.get(
    "/models/{owner}/{name}/versions/{version}/log",
    tags=["versions"],
    openapi_extra=audited("version.log"),
)
async def get_build_log(
    request: Request,
    caller: ReadModels,
    owner: str,
    name: str,
    version: str,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> LogOut:
    catalog = platform_of(request).catalog
    log = await asyncio.to_thread(catalog.build_log, caller, owner, name, version, offset)
    return LogOut(status=log.status, text=log.text, offset=log.offset, done=log.done)
