"""The catalog, a model's page with its try-it form, and a version's build log."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from algora.errors import AlgoraError, InvalidInput, NotFound, PermissionDenied
from algora.gateway.auditing import note_error, trail_of
from algora.gateway.calls import Call, new_request_id
from algora.gateway.permissions import declare
from algora.registry.search import SearchQuery
from algora.registry.views import VersionView
from algora.web.charts import WINDOWS, Window, charts
from algora.web.signin import SignedIn, Visitor, form_of
from algora.web.site import site_of
from algora.workers.spec import CallResult

__all__ = ["model_page_again", "router"]

router = APIRouter()
Reader = Annotated[Visitor, Depends(SignedIn("models:read"))]
Trier = Annotated[Visitor, Depends(SignedIn("models:read"))]
"""Try-it shows the model's page again, so it needs ``models:read``; the call path checks the
``call`` scope for the model, as for every call."""
Filter = Annotated[str | None, Query(max_length=128)]
_MAX_SHOWN = 64 * 1024


@router.get("/", openapi_extra=declare("models:read", audit="ui.catalog"))
async def catalog(
    request: Request,
    visitor: Reader,
    q: Annotated[str, Query(max_length=256)] = "",
    owner: Filter = None,
    runtime: Filter = None,
    status: Filter = None,
    visibility: Filter = None,
    sort: Literal["relevance", "recent", "calls"] = "relevance",
) -> Response:
    site = site_of(request)
    query = SearchQuery(
        text=q, owner=owner or None, runtime=runtime or None, status=status or None,
        visibility=visibility or None, sort=sort,
    )  # fmt: skip
    found = await asyncio.to_thread(site.search.search, visitor.caller, query)
    return site.render(
        request, "catalog.html", visitor=visitor, hits=found.hits, query=query,
        owners=found.owners, runtimes=found.runtimes,
    )  # fmt: skip


@router.get("/models/{owner}/{name}", openapi_extra=declare("models:read", audit="ui.model"))
async def model_page(
    request: Request, visitor: Reader, owner: str, name: str, window: Window = "1h"
) -> Response:
    return await _model_page(request, visitor, owner, name, window=window)


async def model_page_again(
    request: Request, visitor: Visitor, owner: str, name: str, status: int, **shown: Any
) -> Response:
    """The model's page after a form on it was refused (try-it, a promotion's decision)."""
    return await _model_page(request, visitor, owner, name, status, **shown)


async def _model_page(
    request: Request,
    visitor: Visitor,
    owner: str,
    name: str,
    status: int = 200,
    window: Window = "1h",
    **tried: Any,
) -> Response:
    site = site_of(request)
    platform = site.platform
    caller = visitor.caller
    model, latest = await asyncio.to_thread(platform.catalog.describe, caller, owner, name)
    versions = await asyncio.to_thread(platform.catalog.list_versions, caller, owner, name)
    aliases = await asyncio.to_thread(platform.aliases.list_aliases, caller, owner, name)
    try:
        promotions = await asyncio.to_thread(platform.aliases.promotions, caller, owner, name)
    except PermissionDenied:
        promotions = []  # only those who may decide on them see pending promotions
    readme = await asyncio.to_thread(site.search.readme, caller, owner, name)
    shown = latest or next(iter(versions), None)
    back, step = WINDOWS[window]
    since = datetime.now(UTC).replace(tzinfo=None) - back
    stats = await asyncio.to_thread(
        platform.statistics.series, caller, owner, name, since=since, step=step
    )
    return site.render(
        request, "model.html", status, visitor=visitor, model=model, latest=latest,
        versions=versions, aliases=aliases, promotions=promotions, readme=readme,
        shown=shown, schemas=_schemas(shown), example=_example(shown),
        charts=charts(stats), window=window, windows=list(WINDOWS),
        **{"tried": None, "tried_input": None, "tried_spec": "", "tried_kind": "json",
           "promotion_error": None, **tried},
    )  # fmt: skip


@router.post("/models/{owner}/{name}/try", openapi_extra=declare("call", audit="model.call"))
async def try_model(request: Request, visitor: Trier, owner: str, name: str) -> Response:
    """Call the model with the signed-in key's rights, through the one call path."""
    fields = await form_of(request, visitor.csrf)
    kind: Literal["json", "text"] = "text" if fields.get("kind") == "text" else "json"
    text = fields.get("input", "")
    spec = fields.get("version", "").strip() or None
    shown: dict[str, Any] = {"tried_input": text, "tried_spec": spec or "", "tried_kind": kind}
    try:
        payload = _payload(kind, text)
        trail = trail_of(request)
        call = Call(
            caller=visitor.caller, owner=owner, name=name, spec=spec, content_type=kind,
            payload=payload, request_id=new_request_id(), trail=trail,
        )  # fmt: skip
        trail.request_id = call.request_id
        started = time.perf_counter()
        served = await site_of(request).platform.calls.call(call)
        wall = time.perf_counter() - started
    except AlgoraError as error:
        note_error(request, error)
        if error.status in (401, 404):  # hidden models look like missing ones
            raise
        failed = {"ok": False, "error": error.message, "code": error.code}
        status = int(error.status)
        status = status if status < 500 or status == 503 else 502  # the model failed, not us
        return await _model_page(request, visitor, owner, name, status, tried=failed, **shown)
    answer = {
        "ok": True, "version": served.version.semver, "request_id": served.request_id,
        "duration_ms": round(served.result.duration * 1000, 2), "wall_ms": round(wall * 1000, 1),
        **_shown(served.result),
    }  # fmt: skip
    return await _model_page(request, visitor, owner, name, tried=answer, **shown)


@router.get(
    "/models/{owner}/{name}/versions/{version}/log",
    openapi_extra=declare("models:read", audit="ui.build_log"),
)
async def build_log(
    request: Request, visitor: Reader, owner: str, name: str, version: str
) -> Response:
    site = site_of(request)
    catalog = site.platform.catalog
    log = await asyncio.to_thread(catalog.build_log, visitor.caller, owner, name, version)
    model = await asyncio.to_thread(catalog.get_model, visitor.caller, owner, name)
    return site.render(request, "log.html", visitor=visitor, model=model, version=version, log=log)


@router.get(
    "/models/{owner}/{name}/versions/{version}/environment",
    openapi_extra=declare("models:read", audit="ui.environment"),
)
async def environment(
    request: Request, visitor: Reader, owner: str, name: str, version: str
) -> Response:
    """The version's lock and the packages of its SBOM (name, version, licence, purl)."""
    site = site_of(request)
    catalog, caller = site.platform.catalog, visitor.caller
    model = await asyncio.to_thread(catalog.get_model, caller, owner, name)
    shown = await asyncio.to_thread(catalog.get_version, caller, owner, name, version)
    lock = sbom = None
    with contextlib.suppress(NotFound):  # a version still building, or built without the scan
        lock = await asyncio.to_thread(catalog.lock, caller, owner, name, version)
    with contextlib.suppress(NotFound, ValueError):
        sbom = _components(await asyncio.to_thread(catalog.sbom, caller, owner, name, version))
    return site.render(
        request, "environment.html", visitor=visitor, model=model, version=shown, lock=lock,
        sbom=sbom, policy_warnings=shown.lineage.get("policy_warnings") or [],
        vulnerabilities=shown.lineage.get("vulnerabilities") or [],
    )  # fmt: skip


def _components(document: bytes) -> list[dict[str, str]]:
    components = json.loads(document).get("components") or []
    return [
        {
            "name": str(c.get("name", "")),
            "version": str(c.get("version", "")),
            "licence": ", ".join(
                str(entry.get("expression") or entry.get("license", {}).get("id") or "")
                for entry in c.get("licenses") or []
            ),
            "purl": str(c.get("purl", "")),
        }
        for c in components
        if isinstance(c, dict)
    ]


def _payload(kind: str, text: str) -> bytes:
    if kind == "text":
        return text.encode()
    try:
        json.loads(text or "null")
    except json.JSONDecodeError as error:
        raise InvalidInput(
            f"the input is not JSON ({error.msg} at line {error.lineno}): fix it, or send it "
            "as text"
        ) from None
    return (text or "null").encode()


def _shown(result: CallResult) -> dict[str, Any]:
    """The answer as the page shows it: JSON pretty-printed, text as it is, bytes in base64."""
    payload = result.payload
    if result.content_type == "json":
        try:
            value = json.dumps(json.loads(payload or b"null"), indent=2, ensure_ascii=False)
        except json.JSONDecodeError:
            value = payload.decode("utf-8", errors="replace")
    elif result.content_type == "text":
        value = payload.decode("utf-8", errors="replace")
    elif result.content_type == "void":
        value = "(no answer: the model returned nothing)"
    else:
        value = base64.b64encode(payload[:_MAX_SHOWN]).decode("ascii")
    clipped = len(value) > _MAX_SHOWN
    return {"content_type": result.content_type, "output": value[:_MAX_SHOWN], "clipped": clipped}


def _schemas(version: VersionView | None) -> dict[str, str]:
    if version is None:
        return {}
    return {
        side: json.dumps(schema, indent=2, sort_keys=True)
        for side, schema in (("input", version.input_schema), ("output", version.output_schema))
        if schema is not None
    }


def _example(version: VersionView | None) -> tuple[str, str] | None:
    """The version's example input as (kind, text) for the try-it form."""
    if version is None:
        return None
    example = version.manifest.get("example")
    if isinstance(example, dict):
        if example.get("text") is not None:
            return "text", str(example["text"])
        if example.get("input") is not None:
            return "json", json.dumps(example["input"], indent=2)
    if version.sample_input:
        return "json", version.sample_input
    return None
