"""Algorithmia's source and build management under ``/v1/algorithms``, for its own clients.

The routes the ``algorithmia`` Python client's ``create``, ``compile``, ``publish``,
``get_builds``, ``get_build``, ``get_build_logs`` and ``get_scm_status`` reach (reads of
algorithms and versions are in :mod:`algora.protocols.algorithmia.reads`):

- ``create`` makes the model with a git repository seeded from the Python 3 template
  (:mod:`algora.registry.sources`); its answer's ``source.repository_https_url`` is where to
  clone it from (``/git/OWNER/NAME.git``, see :mod:`algora.protocols.algorithmia.git_http`).
- ``compile`` builds the default branch's head and answers once the build has finished, with
  ``build`` (``status`` ``succeeded`` or ``failed``) and ``compilation`` (``successful``,
  ``output``: the reason of a failure); a failed build is an answer, not an error: its log is
  at ``get_build_logs``.
- ``publish`` turns the head's succeeded build into a version (``version_info.version_type``
  ``major``, ``minor`` or ``revision``; ``release_notes``; ``sample_input``). The client retries
  a failed publish once; publishing a build again answers the version it became.

``version_info.git_hash`` is a version's content hash everywhere (what ``algo.info(hash)`` and
calls to ``owner/name/HASH`` take); the commit is ``build.commit_sha``. Rights: creating,
compiling and publishing need the model's ``publish`` right (and the ``models:publish``
scope); reading builds the ``read`` right (``models:read``), and their logs, which show what
the build ran and the model's tracebacks, the ``publish`` right, like the source itself.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, ConfigDict

from algora.auth.principals import Caller
from algora.errors import BadRequest
from algora.gateway.auditing import AuditTrail, trail_of
from algora.gateway.deps import platform_of
from algora.gateway.permissions import Needs, PermissionRoute, audited
from algora.protocols.algorithmia.reads import _algorithm, _details, _page, _settings, _time
from algora.protocols.routing import Answer, Op, Takes, add_routes
from algora.publishing.builds import Builds, BuildView
from algora.registry.sources import python3_template, runtime_of
from algora.registry.specs import Bump
from algora.registry.views import ModelView, VersionView

__all__ = ["router"]

router = APIRouter(prefix="/v1/algorithms", route_class=PermissionRoute, tags=["algorithmia"])
ReadModels = Annotated[Caller, Depends(Needs("models:read"))]
Publish = Annotated[Caller, Depends(Needs("models:publish", write=True))]
_DEFAULT_PAGE = 56  # the client's own default for get_builds
_BUMPS: dict[str, Bump] = {"major": "major", "minor": "minor", "revision": "patch"}


class _Lenient(BaseModel):
    """Algorithmia's request objects: fields Algora does not use are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")


class CreateIn(_Lenient):
    name: str
    details: dict[str, Any] | None = None
    settings: dict[str, Any] | None = None
    version_info: dict[str, Any] | None = None


class PublishIn(_Lenient):
    details: dict[str, Any] | None = None
    settings: dict[str, Any] | None = None
    version_info: dict[str, Any] | None = None


PublishBody = Annotated[PublishIn | None, Body()]


def _text(value: Any, field: str, limit: int) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    if len(text) > limit:
        raise BadRequest(f"{field} is longer than {limit} characters")
    return text


def _summary(details: dict[str, Any]) -> str:
    for key in ("summary", "tagline", "label"):
        value = details.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:2000]
    return ""


def _release(body: PublishIn | None) -> dict[str, Any]:
    """What a publish's ``version_info`` asks for: the bump, the release notes, the sample."""
    info = (body.version_info if body is not None else None) or {}
    kind = info.get("version_type") or "minor"
    if kind not in _BUMPS:
        raise BadRequest(
            f"version_info.version_type '{kind}' is not one of major, minor or revision"
        )
    return {
        "bump": _BUMPS[str(kind)],
        "release_notes": _text(info.get("release_notes"), "release_notes", 100_000),
        "sample_input": _text(info.get("sample_input"), "sample_input", 100_000),
    }


def _published(published: tuple[ModelView, VersionView, bool], trail: AuditTrail) -> None:
    trail.version = published[1].semver


def _source(request: Request, owner: str, name: str) -> dict[str, Any]:
    url = str(request.base_url).rstrip("/") + f"/git/{owner}/{name}.git"
    return {
        "repository_name": name,
        "repository_owner": owner,
        "repository_https_url": url,
        "repository_ssh_url": None,
        "scm": {"id": "internal", "provider": "internal", "default": True, "enabled": True},
    }


def _build(build: BuildView) -> dict[str, Any]:
    body: dict[str, Any] = {
        "build_id": build.build_id,
        "commit_sha": build.commit_sha,
        "status": build.status,
        "started_at": _time(build.started_at),
        "finished_at": _time(build.finished_at),
        "resource_type": "algorithm_build",
    }
    if build.version is not None:
        body["version_info"] = {"semantic_version": build.version}
    return body


def _compiled(request: Request, model: ModelView, build: BuildView) -> dict[str, Any]:
    """Algorithmia's answer to ``compile``: the algorithm as the build made it."""
    owner = model.owner
    return {
        "id": str(model.id),
        "name": model.name,
        "owner": owner,
        "details": _details(model),
        "settings": _settings(model, build.manifest, build.environment_hash),
        "source": _source(request, owner, model.name),
        "version_info": {
            "semantic_version": build.version,
            "git_hash": build.content_hash,
            "release_notes": "",
            "sample_input": None,
            "sample_output": None,
        },
        "build": _build(build),
        "compilation": {
            "successful": build.status == "succeeded",
            "output": build.failure_reason or "",
        },
        "self_link": f"/v1/algorithms/{owner}/{model.name}/builds/{build.build_id}",
        "resource_type": "algorithm",
    }


@router.post(
    "/{owner}",
    status_code=201,
    summary="Create an algorithm with a git repository",
    openapi_extra=audited("model.create"),
)
async def create_algorithm(
    request: Request, caller: Publish, owner: str, body: CreateIn
) -> dict[str, Any]:
    platform = platform_of(request)
    name = body.name.lower()  # Algorithmia's Hello is Algora's hello (gateway.algorithmia_names)
    trail_of(request).resource = f"{owner}/{name}"[:255]
    details = body.details or {}
    settings = body.settings or {}
    runtime_of(settings)  # only Python 3
    summary = _summary(details)
    network = settings.get("network_access") == "full"
    template = python3_template(name, summary=summary, network=network, owner=owner)
    model = await asyncio.to_thread(
        platform.sources.create, caller, owner, name, summary=summary, template=template
    )
    answer = _algorithm(model, None)
    answer["source"] = _source(request, owner, model.name)
    return answer


@router.get(
    "/{owner}/{name}/builds",
    summary="The algorithm's builds, newest first, paged",
    openapi_extra=audited("build.list"),
)
async def list_builds(
    request: Request,
    caller: ReadModels,
    owner: str,
    name: str,
    limit: Annotated[int, Query(ge=1)] = _DEFAULT_PAGE,
    marker: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """A page of builds, newest first. ``marker`` is the last build of the page before (so a
    build started meanwhile never shifts the pages); ``limit`` is capped at 100."""
    builds = platform_of(request).builds
    rows = await asyncio.to_thread(builds.of_model, caller, owner, name, marker)
    page, links = _page(request, rows, limit, lambda b: b.build_id)
    return {**links, "results": [_build(b) for b in page]}


add_routes(
    router,
    lambda platform: platform.builds,
    Op(
        "POST /{owner}/{name}/versions",
        "publish_algorithm",
        Builds.publish,
        Publish,
        Answer(dict[str, Any], lambda published: _algorithm(published[0], published[1])),
        "version.publish",
        body=Takes(PublishBody, lambda _body: (), _release, default=None),
        noted=_published,
        summary="Publish the built head as a new version",
    ),
    Op(
        "POST /{owner}/{name}/compile",
        "compile_algorithm",
        Builds.compile_and_wait,
        Publish,
        Answer(dict[str, Any], lambda built, request: _compiled(request, *built), request=True),
        "model.compile",
        summary="Build the head of the algorithm's repository",
    ),
    Op(
        "GET /{owner}/{name}/builds/{build_id}",
        "get_build",
        Builds.get,
        ReadModels,
        Answer(dict[str, Any], _build),
        "build.read",
        summary="One build of the algorithm",
    ),
    Op(
        "GET /{owner}/{name}/builds/{build_id}/logs",
        "get_build_logs",
        Builds.log,
        ReadModels,
        Answer(dict[str, Any], lambda log: {"logs": log}),
        "build.log",
        summary="The log of one build",
    ),
)
add_routes(
    router,
    lambda platform: platform.sources,
    Op(
        "GET /{owner}/{name}/scm/status",
        "get_scm_status",
        lambda sources, caller, owner, name: sources.branch(caller, owner, name, "read"),
        ReadModels,
        Answer(dict[str, Any], lambda _branch: {"scm_connection_status": "active"}),
        "source.status",
        summary="The state of the algorithm's repository",
    ),
)
