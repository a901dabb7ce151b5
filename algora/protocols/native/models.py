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
from algora.protocols.routing import Answer, Op, Takes, add_routes, as_is, each, one
from algora.protocols.wire import FromView
from algora.publishing.uploads import GitInfo
from algora.registry.catalog import Catalog
from algora.registry.views import VersionView

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", route_class=PermissionRoute)
# Each route's caller comes through the scope it needs; writers also take a rate-limit token.
ReadModels = Annotated[Caller, Depends(Needs("models:read"))]
Publish = Annotated[Caller, Depends(Needs("models:publish", write=True))]
ManageModels = Annotated[Caller, Depends(Needs("models:manage", write=True))]


class ModelOut(FromView):
    owner: str
    name: str
    full_name: str
    description: str
    visibility: str
    tags: list[str]
    deprecated: bool
    created_at: UtcDateTime


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


class LogOut(FromView):
    status: str
    text: str
    offset: int
    done: bool


Offset = Annotated[int, Query(ge=0)]


add_routes(
    router,
    lambda platform: platform.catalog,
    Op(
        "GET /models",
        "list_models",
        Catalog.list_models,
        ReadModels,
        each(ModelOut),
        "model.list",
    ),
    Op(
        "GET /models/{owner}/{name}",
        "get_model",
        Catalog.get_model,
        ReadModels,
        one(ModelOut),
        "model.read",
    ),
    Op(
        "PATCH /models/{owner}/{name}",
        "update_model",
        Catalog.update_model,
        ManageModels,
        one(ModelOut),
        "model.update",
        body=Takes(ModelPatch, lambda _patch: (), lambda patch: patch.model_dump()),
        forget=True,
    ),
    tags=("models",),
)


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
    bump: Annotated[
        Literal["major", "minor", "patch"] | None,
        Query(description="Raise the highest version's MAJOR, MINOR or PATCH; not with version"),
    ] = None,
    version: Annotated[
        str | None, Query(description="An explicit MAJOR.MINOR.PATCH; not with bump")
    ] = None,
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


add_routes(
    router,
    lambda platform: platform.catalog,
    Op(
        "GET /models/{owner}/{name}/versions",
        "list_versions",
        Catalog.list_versions,
        ReadModels,
        each(VersionOut),
        "version.list",
    ),
    Op(
        "GET /models/{owner}/{name}/versions/{version}",
        "get_version",
        Catalog.get_version,
        ReadModels,
        one(VersionOut),
        "version.read",
    ),
    Op(
        "PATCH /models/{owner}/{name}/versions/{version}",
        "update_version",
        Catalog.deprecate_version,
        ManageModels,
        one(VersionOut),
        "version.deprecate",
        body=Takes(VersionPatch, lambda patch: (patch.deprecated,)),
        forget=True,
    ),
    Op(
        "GET /models/{owner}/{name}/versions/{version}/lock",
        "get_lock",
        Catalog.lock,
        ReadModels,
        as_is(str),
        "version.lock",
        summary="The locked requirements (uv, with hashes) the version's environment was built "
        "from",
        options={"response_class": PlainTextResponse},
    ),
    Op(
        "GET /models/{owner}/{name}/versions/{version}/schema",
        "get_schema",
        Catalog.get_version,
        ReadModels,
        Answer(SchemaOut, lambda row: SchemaOut(input=row.input_schema, output=row.output_schema)),
        "version.schema",
    ),
    Op(
        "GET /models/{owner}/{name}/versions/{version}/lineage",
        "get_lineage",
        Catalog.lineage,
        ReadModels,
        as_is(dict[str, Any]),
        "version.lineage",
    ),
    Op(
        "GET /models/{owner}/{name}/versions/{version}/sbom",
        "get_sbom",
        Catalog.sbom,
        ReadModels,
        Answer(Response, lambda sbom: Response(sbom, media_type="application/vnd.cyclonedx+json")),
        "version.sbom",
        summary="The CycloneDX JSON SBOM of the version's environment (its locked packages)",
        options={"response_class": Response},
    ),
    Op(
        "GET /models/{owner}/{name}/versions/{version}/log",
        "get_build_log",
        Catalog.build_log,
        ReadModels,
        one(LogOut),
        "version.log",
        query={"offset": (Offset, 0)},
    ),
    tags=("versions",),
)
