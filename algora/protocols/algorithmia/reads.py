"""Algorithmia's algorithm-management reads under ``/v1/algorithms``, for its own clients.

The routes the ``algorithmia`` Python client's ``algo.exists()``, ``algo.info()`` and
``algo.versions()`` reach, answering with the fields that client and Algorithmia's API
document (``details``, ``settings``, ``version_info.semantic_version``, ``build``,
``compilation``, ``resource_type``; lists paged with ``marker``/``next_link``/``results``).
Creating, compiling and publishing from a model's git repository, and its builds, are in
:mod:`algora.protocols.algorithmia.manage`.

A model is Algorithmia's algorithm; its versions map as follows: ``version_info.git_hash`` is
the version's content hash (what ``algo.info(hash)`` takes: a prefix of 12 or more hex digits,
or an exact ``MAJOR.MINOR.PATCH``); ``build.status`` is ``succeeded``, ``failed`` or
``in-progress``; a version published from a build names it in ``build.build_id`` and its
commit in ``build.commit_sha`` (else both are the version's own id and content hash). The
list's filters: ``published=true`` keeps ready versions, ``callable=true`` ready versions that
are not deprecated (``false``: the others). A page's ``marker`` is its last
version; ``next_link`` is the next page's URL, with the same filters. Updating an algorithm
and its secrets are in :mod:`algora.protocols.algorithmia.algorithm_settings`.

Errors keep Algorithmia's shape (``{"error": {"message": ...}}``); an unknown or hidden model
says "No such algorithm", which is what the client's ``exists()`` looks for.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, ParamSpec, TypeVar

from fastapi import APIRouter, Depends, Query, Request

from algora.auth.principals import Caller
from algora.errors import BadRequest, ModelNotFound
from algora.gateway.deps import platform_of
from algora.gateway.permissions import Needs, PermissionRoute, audited
from algora.protocols.routing import Answer, Op, add_routes
from algora.registry.catalog import Catalog
from algora.registry.views import ModelView, VersionView

__all__ = ["router"]

router = APIRouter(prefix="/v1/algorithms", route_class=PermissionRoute, tags=["algorithmia"])
ReadModels = Annotated[Caller, Depends(Needs("models:read"))]
_DEFAULT_PAGE = 50
_MAX_PAGE = 100
_BUILD_STATUS = {"ready": "succeeded", "failed": "failed", "building": "in-progress"}

T = TypeVar("T")
P = ParamSpec("P")


def _as_algorithm(function: Callable[P, T]) -> Callable[P, T]:
    """``function``, with an unknown model saying "No such algorithm" (what Algorithmia's
    client's ``exists()`` looks for)."""

    @functools.wraps(function)
    def read(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return function(*args, **kwargs)
        except ModelNotFound as error:
            raise ModelNotFound(f"No such algorithm: {error.message}") from None

    return read


async def _registry_read(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a registry read off the event loop; an unknown model says "No such algorithm"."""
    return await asyncio.to_thread(_as_algorithm(function), *args, **kwargs)


def _page(
    request: Request, rows: Sequence[T], limit: int, marker_of: Callable[[T], str]
) -> tuple[Sequence[T], dict[str, str | None]]:
    """The first ``limit`` rows (at most 100), and the ``marker`` (``marker_of`` the page's
    last row) and ``next_link`` of the page after them: None on the last page."""
    limit = min(limit, _MAX_PAGE)
    page = rows[:limit]
    following = marker_of(page[-1]) if len(rows) > limit else None
    next_link = None
    if following is not None:
        next_link = str(request.url.include_query_params(limit=limit, marker=following))
    return page, {"marker": following, "next_link": next_link}


def _time(value: datetime | None) -> str | None:
    """Algorithmia's timestamps: UTC with milliseconds, ``2022-05-08T22:43:09.050Z``."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _details(model: ModelView) -> dict[str, Any]:
    summary = model.description or ""
    return {
        "label": model.name,
        "summary": summary,
        "tagline": summary.splitlines()[0] if summary else "",
    }


def _settings(
    model: ModelView, manifest: Mapping[str, Any], environment: str | None
) -> dict[str, Any]:
    """Algorithmia's ``settings`` of the model as a version (or a build) made it."""
    network = bool(manifest.get("serving", {}).get("network", False))
    return {
        "algorithm_callability": "public" if model.visibility == "public" else "private",
        "source_visibility": "closed",
        "language": "python3",
        "environment": environment,
        "license": "",
        "network_access": "full" if network else "isolated",
        "pipeline_enabled": False,
        "royalty_microcredits": 0,
    }


def _version_info(version: VersionView) -> dict[str, Any]:
    example = version.manifest.get("example")
    return {
        "semantic_version": version.semver,
        "git_hash": version.content_hash,
        "release_notes": version.release_notes or "",
        "sample_input": (
            version.sample_input
            if version.sample_input is not None
            else None
            if example is None
            else str(example)
        ),
        "sample_output": None,
        "deprecated": version.deprecated,
    }


def _algorithm(model: ModelView, version: VersionView | None) -> dict[str, Any]:
    """An Algorithmia algorithm object: the model, described by one of its versions."""
    owner = model.owner
    body: dict[str, Any] = {
        "id": str(model.id),
        "name": model.name,
        "owner": owner,
        "details": _details(model),
        "settings": _settings(
            model,
            version.manifest if version is not None else {},
            version.environment_hash if version is not None else None,
        ),
        "self_link": f"/v1/algorithms/{owner}/{model.name}",
        "resource_type": "algorithm",
    }
    if version is not None:
        body["version_info"] = _version_info(version)
        git = version.lineage.get("git")
        commit = git.get("commit") if isinstance(git, dict) else None
        body["build"] = {
            # a version built from its repository names that build and its commit
            "build_id": str(version.lineage.get("build_id") or version.id),
            "status": _BUILD_STATUS.get(version.status, version.status),
            "commit_sha": str(commit or version.content_hash),
            "started_at": _time(version.created_at),
            "finished_at": _time(version.ready_at),
            "resource_type": "algorithm_build",
        }
        body["compilation"] = {
            "successful": version.status == "ready",
            "output": version.failure_reason or "",
        }
        body["self_link"] += f"/versions/{version.content_hash or version.semver}"
    return body


def _flag(value: str | None, name: str) -> bool | None:
    """A list filter: ``true`` keeps what it names, ``false`` what it does not."""
    if value is None or not value.strip():
        return None
    text = value.strip().lower()
    if text not in ("true", "1", "false", "0"):
        raise BadRequest(f"{name} is true or false, not '{value}'")
    return text in ("true", "1")


def _marker(value: str | None) -> tuple[int, int, int] | None:
    if not value:
        return None
    parts = value.strip().split(".")
    if len(parts) != 3 or not all(p.isdigit() and len(p) <= 9 for p in parts):
        raise BadRequest(f"marker '{value}' is not one this server gave (a MAJOR.MINOR.PATCH)")
    return int(parts[0]), int(parts[1]), int(parts[2])


add_routes(
    router,
    lambda platform: platform.catalog,
    Op(
        "GET /{owner}/{name}",
        "get_algorithm",
        _as_algorithm(Catalog.describe),
        ReadModels,
        Answer(dict[str, Any], lambda described: _algorithm(*described)),
        "model.read",
        summary="An algorithm (model) and its latest version",
    ),
)


@router.get(
    "/{owner}/{name}/versions",
    summary="An algorithm's versions, highest first, paged",
    openapi_extra=audited("version.list"),
)
async def list_algorithm_versions(
    request: Request,
    caller: ReadModels,
    owner: str,
    name: str,
    limit: Annotated[int, Query(ge=1)] = _DEFAULT_PAGE,
    marker: str | None = None,
    published: str | None = None,
    only_callable: Annotated[str | None, Query(alias="callable")] = None,
) -> dict[str, Any]:
    """A page of versions, highest first. ``marker`` is the last version of the page before
    (so a version published meanwhile never shifts the pages); ``next_link`` is the next page
    with the same filters; ``limit`` is capped at 100."""
    wanted_published = _flag(published, "published")
    wanted_callable = _flag(only_callable, "callable")
    after = _marker(marker)
    catalog = platform_of(request).catalog
    model = await _registry_read(catalog.get_model, caller, owner, name)
    versions = await _registry_read(
        catalog.list_versions,
        caller,
        owner,
        name,
        ready=wanted_published,
        is_callable=wanted_callable,
        below=after,
    )
    page, links = _page(request, versions, limit, lambda v: v.semver)
    return {**links, "results": [_algorithm(model, v) for v in page]}


@router.get(
    "/{owner}/{name}/versions/{version}",
    summary="One version of an algorithm",
    openapi_extra=audited("version.read"),
)
async def get_algorithm_version(
    request: Request, caller: ReadModels, owner: str, name: str, version: str
) -> dict[str, Any]:
    catalog = platform_of(request).catalog
    model = await _registry_read(catalog.get_model, caller, owner, name)
    found = await _registry_read(catalog.find_version, caller, owner, name, version)
    return _algorithm(model, found)
