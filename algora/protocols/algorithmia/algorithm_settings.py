"""Algorithmia's algorithm settings for its own clients: ``update`` and the secrets.

``algo.update(...)`` is ``PUT /v1/algorithms/{owner}/{name}``. A JSON body changes what Algora
keeps per model: ``details.summary`` (the description) and ``settings.algorithm_callability``
(``public`` or ``private``); the rest of Algorithmia's fields are accepted and ignored
(network access, environment and schemas belong to each version's manifest). The answer is the
algorithm as it now is. ``algorithmia`` 2.0.5 sends its update form-encoded, which carries the
field names without their values: such a body changes nothing and is refused with 415 and what
to do instead; an empty body changes nothing and answers the algorithm.

Secrets (``algo.set_secret``, ``algo.get_secrets``) live at
``/v1/algorithms/{algorithm id}/secrets`` (the id is the algorithm's ``id`` field); the one
secret provider (``GET /v1/secret-provider``) is Algora's own store, encrypted at rest
(:mod:`algora.registry.secrets`). A secret's ``secret_key`` is the environment variable its
model's workers see; setting one again replaces its value. Workers started afterwards see the
change: the model's idle pools are stopped at once and busy ones once their calls finish. No
answer, log line or audit row ever holds a value. Only the model's managers (``manage`` right,
``models:manage`` scope) update the model or set and list its secrets.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select

from algora.auth.policy import can, require
from algora.auth.principals import Caller
from algora.db.tables import Model, Version
from algora.errors import (
    BadRequest,
    InvalidInput,
    ModelNotFound,
    PermissionDenied,
    UnsupportedMediaType,
)
from algora.gateway.auditing import trail_of
from algora.gateway.deps import platform_of, read_body
from algora.gateway.inputs import decode_json
from algora.gateway.permissions import AUTHENTICATED, Needs, PermissionRoute
from algora.protocols.algorithmia.reads import _algorithm, _latest_callable, _time
from algora.registry.secrets import SecretInfo

__all__ = ["router"]

router = APIRouter(route_class=PermissionRoute, tags=["algorithmia"])
Authenticated = Annotated[Caller, Depends(Needs(AUTHENTICATED))]
Manage = Annotated[Caller, Depends(Needs("models:manage"))]
ManageWrite = Annotated[Caller, Depends(Needs("models:manage", write=True))]

PROVIDER_ID = "algora"
_MAX_BODY = 256 * 1024
_MAX_ID = 2**62
_CALLABILITY = {"public": "public", "private": "private"}


def _problems(error: ValidationError) -> str:
    """What was wrong, by field; never the input (a secret's value may be in it)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ())) or 'body'}: {e.get('msg', '')}"
        for e in error.errors(include_input=False)
    )


def _object_in(body: bytes) -> dict[str, Any]:
    """The JSON object ``body`` holds, else InvalidInput."""
    try:
        value = decode_json(body)
    except (UnicodeDecodeError, ValueError):
        value = None
    if not isinstance(value, dict):
        raise InvalidInput("the body is not a JSON object")
    return value


async def _json_object(request: Request) -> dict[str, Any] | None:
    """The JSON object a body holds, or None for an empty body."""
    body = await read_body(request, _MAX_BODY)
    return _object_in(body) if body.strip() else None


# update ---------------------------------------------------------------------------------------
class _Lenient(BaseModel):
    """Algorithmia's request objects: fields Algora does not keep are accepted and ignored."""

    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)


class _Details(_Lenient):
    summary: str | None = Field(default=None, max_length=10_000)


class _Settings(_Lenient):
    algorithm_callability: str | None = None


class UpdateIn(_Lenient):
    details: _Details | None = None
    settings: _Settings | None = None


def _form_field_names(body: bytes) -> list[str]:
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return []
    return sorted({name[:40] for name, _value in pairs})[:10]


async def _update_body(request: Request) -> UpdateIn:
    body = await read_body(request, _MAX_BODY)
    if not body.strip():
        return UpdateIn()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()[:100]
    if content_type != "application/json":
        fields = _form_field_names(body) if "=" in body.decode("latin-1") else []
        named = f" (it named {', '.join(fields)} without their values)" if fields else ""
        raise UnsupportedMediaType(
            f"an algorithm update is a JSON object sent as application/json; this one came "
            f"as '{content_type or 'no content type'}'{named}, as algorithmia 2.0.5's "
            "update() sends it, so nothing was changed. Send JSON (for example "
            '{"details": {"summary": "..."}, "settings": {"algorithm_callability": '
            '"private"}}), or use PATCH /api/v1/models/OWNER/NAME'
        )
    try:
        return UpdateIn.model_validate(_object_in(body))
    except ValidationError as error:
        raise InvalidInput(f"invalid update: {_problems(error)}") from None


@router.put("/v1/algorithms/{owner}/{name}", summary="Change an algorithm's summary or callability")
async def update_algorithm(
    request: Request, caller: ManageWrite, owner: str, name: str
) -> dict[str, Any]:
    platform = platform_of(request)

    def may_manage() -> None:  # before the body is looked at
        with platform.sessions() as session:
            require(caller, "manage", platform.registry.find_model(session, owner, name))

    try:
        await asyncio.to_thread(may_manage)
    except ModelNotFound as error:
        raise ModelNotFound(f"No such algorithm: {error.message}") from None
    update = await _update_body(request)
    changes: dict[str, Any] = {}
    if update.details is not None and update.details.summary is not None:
        changes["description"] = update.details.summary
    callability = update.settings.algorithm_callability if update.settings else None
    if callability is not None:
        if callability not in _CALLABILITY:
            raise InvalidInput(
                f"settings.algorithm_callability is 'public' or 'private', not '{callability}'"
            )
        changes["visibility"] = _CALLABILITY[callability]
    try:
        await asyncio.to_thread(platform.registry.update_model, caller, owner, name, **changes)
        model = await asyncio.to_thread(platform.registry.get_model, caller, owner, name)
        versions = await asyncio.to_thread(platform.registry.list_versions, caller, owner, name)
    except ModelNotFound as error:
        raise ModelNotFound(f"No such algorithm: {error.message}") from None
    platform.calls.forget()
    return _algorithm(model, _latest_callable(versions))


# secrets ------------------------------------------------------------------------------------
class SecretIn(_Lenient):
    short_name: str = Field(min_length=1, max_length=64)
    secret_key: str = Field(min_length=1, max_length=128)
    secret_value: str
    description: str | None = Field(default=None, max_length=500)
    provider_id: str | None = None
    owner_type: str | None = None
    owner_id: str | None = None


def _secret(algorithm_id: int, info: SecretInfo) -> dict[str, Any]:
    return {
        "id": str(info.id),
        "owner_type": "algorithm",
        "owner_id": str(algorithm_id),
        "provider_id": PROVIDER_ID,
        "short_name": info.short_name,
        "secret_key": info.env_name,
        "description": info.description,
        "created_at": _time(info.created_at),
        "updated_at": _time(info.updated_at),
        "resource_type": "secret",
    }


def _managed_model(request: Request, caller: Caller, algorithm_id: int) -> Model:
    """The model with this id, once the caller may manage it; hidden ones are not found."""
    with platform_of(request).sessions() as session:
        model = session.get(Model, algorithm_id) if 0 < algorithm_id < _MAX_ID else None
        if model is None or not can(caller, "read", model):
            raise ModelNotFound(f"No such algorithm: '{algorithm_id}'")
        owner = model.owner.name
        if not can(caller, "manage", model):
            raise PermissionDenied(
                f"'{caller.name}' may not manage '{owner}/{model.name}', so not its secrets"
            )
        trail_of(request).resource = f"{owner}/{model.name}"
        return model


def _version_keys(request: Request, model_id: int) -> list[str]:
    with platform_of(request).sessions() as session:
        ids = session.scalars(select(Version.id).where(Version.model_id == model_id)).all()
        return [str(i) for i in ids]


@router.get(
    "/v1/algorithms/{algorithm_id:int}/secrets",
    summary="An algorithm's secrets: names, descriptions and times, never values",
)
async def list_secrets(request: Request, caller: Manage, algorithm_id: int) -> dict[str, Any]:
    platform = platform_of(request)
    model = await asyncio.to_thread(_managed_model, request, caller, algorithm_id)
    infos = await asyncio.to_thread(platform.secrets.list_secrets, model.id)
    return {
        "marker": None,
        "next_link": None,
        "results": [_secret(model.id, info) for info in infos],
    }


@router.post(
    "/v1/algorithms/{algorithm_id:int}/secrets",
    summary="Set an algorithm's secret: an environment variable of its workers",
)
async def set_secret(
    request: Request, response: Response, caller: ManageWrite, algorithm_id: int
) -> dict[str, Any]:
    platform = platform_of(request)
    trail_of(request).resource = f"algorithm/{algorithm_id}"
    model = await asyncio.to_thread(_managed_model, request, caller, algorithm_id)
    try:
        body = SecretIn.model_validate(await _json_object(request) or {})
    except ValidationError as error:
        raise InvalidInput(f"invalid secret: {_problems(error)}") from None
    if body.provider_id not in (None, PROVIDER_ID):
        raise BadRequest(f"unknown secret provider '{body.provider_id}': use '{PROVIDER_ID}'")
    if body.owner_type not in (None, "algorithm"):
        raise BadRequest("owner_type is 'algorithm': Algora keeps secrets per algorithm")
    if body.owner_id not in (None, str(algorithm_id)):
        raise BadRequest(f"owner_id '{body.owner_id}' is not this algorithm's id")
    info, created = await asyncio.to_thread(
        platform.secrets.set_secret,
        model.id,
        body.secret_key,
        body.secret_value,
        short_name=body.short_name.strip(),
        description=(body.description or "").strip(),
        principal_id=caller.principal_id,
    )
    # Workers get their secrets when they start: restart this model's pools.
    await platform.pools.retire(await asyncio.to_thread(_version_keys, request, model.id))
    response.status_code = 201 if created else 200
    return _secret(model.id, info)


@router.get("/v1/secret-provider", summary="Where secrets are kept: Algora's own encrypted store")
async def list_secret_providers(_caller: Authenticated) -> list[dict[str, Any]]:
    return [
        {
            "id": PROVIDER_ID,
            "name": "Algora",
            "description": "Algora's registry, encrypted at rest with the server's secrets key",
            "provider_type": "internal",
            "is_default": True,
            "resource_type": "secret_provider",
        }
    ]
