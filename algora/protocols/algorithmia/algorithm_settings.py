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

from algora.auth.principals import Caller
from algora.errors import BadRequest, InvalidInput, ModelNotFound, UnsupportedMediaType
from algora.gateway.auditing import trail_of
from algora.gateway.deps import platform_of, read_body
from algora.gateway.inputs import decode_json
from algora.gateway.openapi import SECRET_KEY_RULE, SECRET_VALUE_RULE, request_body
from algora.gateway.permissions import AUTHENTICATED, Needs, PermissionRoute, audited
from algora.protocols.algorithmia.reads import _algorithm, _registry_read, _time
from algora.registry.catalog import Visibility
from algora.registry.secrets import SecretInfo
from algora.registry.views import ModelView

__all__ = ["router"]

router = APIRouter(route_class=PermissionRoute, tags=["algorithmia"])
Authenticated = Annotated[Caller, Depends(Needs(AUTHENTICATED))]
Manage = Annotated[Caller, Depends(Needs("models:manage"))]
ManageWrite = Annotated[Caller, Depends(Needs("models:manage", write=True))]

PROVIDER_ID = "algora"
_MAX_BODY = 256 * 1024
_CALLABILITY: dict[str, Visibility] = {"public": "public", "private": "private"}


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


@router.put(
    "/v1/algorithms/{owner}/{name}",
    summary="Change an algorithm's summary or callability",
    openapi_extra=audited("model.update"),
)
async def update_algorithm(
    request: Request, caller: ManageWrite, owner: str, name: str
) -> dict[str, Any]:
    platform = platform_of(request)
    catalog = platform.catalog
    # before the body is looked at
    await _registry_read(catalog.require, caller, owner, name, "manage")
    update = await _update_body(request)
    summary = update.details.summary if update.details else None
    callability = update.settings.algorithm_callability if update.settings else None
    if callability is not None and callability not in _CALLABILITY:
        raise InvalidInput(
            f"settings.algorithm_callability is 'public' or 'private', not '{callability}'"
        )
    await _registry_read(
        catalog.update_model,
        caller,
        owner,
        name,
        description=summary,
        visibility=_CALLABILITY[callability] if callability is not None else None,
    )
    model, latest = await _registry_read(catalog.describe, caller, owner, name)
    platform.calls.forget()
    return _algorithm(model, latest)


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


async def _managed_model(request: Request, caller: Caller, algorithm_id: int) -> ModelView:
    """The model with this id, once the caller may manage it; hidden ones are not found."""
    secrets = platform_of(request).managed_secrets
    try:
        model = await asyncio.to_thread(secrets.model, caller, algorithm_id)
    except ModelNotFound:
        raise ModelNotFound(f"No such algorithm: '{algorithm_id}'") from None
    trail_of(request).resource = model.full_name
    return model


@router.get(
    "/v1/algorithms/{algorithm_id:int}/secrets",
    summary="An algorithm's secrets: names, descriptions and times, never values",
    openapi_extra=audited("model.secret_list", always=True),
)
async def list_secrets(request: Request, caller: Manage, algorithm_id: int) -> dict[str, Any]:
    secrets = platform_of(request).managed_secrets
    model = await _managed_model(request, caller, algorithm_id)
    infos = await asyncio.to_thread(secrets.list_secrets, caller, model.id)
    return {
        "marker": None,
        "next_link": None,
        "results": [_secret(model.id, info) for info in infos],
    }


@router.post(
    "/v1/algorithms/{algorithm_id:int}/secrets",
    summary="Set an algorithm's secret: an environment variable of its workers",
    responses={201: {"model": dict[str, Any], "description": "Created: the secret is new"}},
    openapi_extra={
        **audited("model.secret_set"),
        **request_body(
            SecretIn,
            {},
            secret_key=SECRET_KEY_RULE,
            secret_value=SECRET_VALUE_RULE,
            provider_id={"enum": [PROVIDER_ID, None]},
            owner_type={"enum": ["algorithm", None]},
        ),
    },
)
async def set_secret(
    request: Request, response: Response, caller: ManageWrite, algorithm_id: int
) -> dict[str, Any]:
    platform = platform_of(request)
    trail_of(request).resource = f"algorithm/{algorithm_id}"
    model = await _managed_model(request, caller, algorithm_id)
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
    change = await asyncio.to_thread(
        platform.managed_secrets.set_secret,
        caller,
        model.id,
        body.secret_key,
        body.secret_value,
        short_name=body.short_name.strip(),
        description=(body.description or "").strip(),
    )
    # Workers get their secrets when they start: restart this model's pools.
    await platform.pools.retire(list(change.version_keys))
    response.status_code = 201 if change.created else 200
    return _secret(model.id, change.info)


@router.get(
    "/v1/secret-provider",
    summary="Where secrets are kept: Algora's own encrypted store",
    openapi_extra=audited("secret.providers"),
)
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
