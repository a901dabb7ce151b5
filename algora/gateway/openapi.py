"""The OpenAPI document says what the server really answers.

FastAPI documents a 422 validation error on every operation with a body or parameters, and
only the statuses a route lists itself. The gateway answers bad input with 400
``invalid_input`` and refuses or fails requests with the standard error body
(``{"error": {"code", "message", "details"}}``) under the statuses below, on any route: a
missing or wrong key (401), a missing scope (403), an unknown name (404), a conflict (409), a
body too large or of the wrong type (413, 415), a rate limit (429, with ``Retry-After``), a
model that is not ready (503). The git routes answer errors in plain text, as git clients
expect. :func:`document_errors` writes them into every operation, once,
where the document is built, so no route can forget one.

It also states what FastAPI cannot see, so that a request the document calls valid is one the
server accepts and an answer is one it describes: the rules the services check beyond a
parameter's type (a model's name, a version, an alias, an anchor, a data path:
:data:`PATH_RULES`, :data:`QUERY_RULES`, :data:`OPERATION_RULES`, read from the services' own
patterns), a call's raw input, the audit list's rows, and no body on a HEAD answer.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel

from algora.audit.anchors import ANCHOR_PATTERN
from algora.audit.queries import EVENT_SCHEMA
from algora.auth.keyring import MODEL_LIMIT_PATTERN
from algora.auth.scopes import ALL, PATTERNED, SCOPE_PATTERN, SCOPES
from algora.gateway.inputs import MAX_INT64
from algora.gateway.permissions import PERMISSION_KEY, PUBLIC
from algora.modelfolder.manifest import NAME_PATTERN
from algora.registry.secrets import (
    ENV_NAME_PATTERN,
    MAX_VALUE_BYTES,
    RESERVED_ENV_NAMES,
    RESERVED_ENV_PREFIXES,
)
from algora.registry.specs import (  # the services' own patterns: a copy could drift
    ALIAS_PATTERN,
    HASH_PATTERN,
    PARTIAL_PATTERN,
    SEMVER_PATTERN,
    VERSIONISH_PATTERN,
)
from algora.settings import BUCKET_PATTERN, CONNECTOR_NAME_PATTERN
from algora.store.collection_space import ACLS
from algora.store.collections import COLLECTION_PATTERN
from algora.store.model_data import ALGO_FOLDERS

__all__ = [
    "ERROR_STATUSES",
    "OPERATION_RULES",
    "PATH_RULES",
    "QUERY_RULES",
    "REQUEST_BODIES",
    "SECRET_KEY_RULE",
    "SECRET_VALUE_RULE",
    "UtcDateTime",
    "document_errors",
    "request_body",
]

ERROR_SCHEMA = "AlgoraError"
ERROR_STATUSES: dict[str, str] = {
    "400": "The request is malformed or invalid (code `invalid_input`).",
    "401": "No key, or a key that is unknown, expired or revoked.",
    "403": "The key may not do this.",
    "404": "No such resource, or none the caller may see.",
    "405": "The route does not accept this method.",
    "409": "The request conflicts with the current state.",
    "413": "The body is larger than this route accepts.",
    "415": "The body's media type is not one this route accepts.",
    "429": "Rate limited: retry after the `Retry-After` seconds.",
    "503": "The model or a service it needs is not available now: retry later.",
}
_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def _error_schema() -> dict[str, Any]:
    return {
        "title": ERROR_SCHEMA,
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "details": {},
                },
            }
        },
    }


KEY_SCHEME = "apiKey"
_KEY_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": "Authorization",
    "description": "An Algora API key: `Simple KEY` (Algorithmia's form), `Bearer KEY`, or "
    "the bare key. Every route but the health checks needs one.",
}


def document_errors(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with every operation's error statuses documented (changed in place)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR_SCHEMA] = _error_schema()
    schemas[EVENT_SCHEMA["title"]] = copy.deepcopy(EVENT_SCHEMA)
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    _exact_integers(schemas)
    _state_properties(schemas)
    reference = {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}
    document["components"]["securitySchemes"] = {KEY_SCHEME: _KEY_SCHEME}
    for path, operations in document.get("paths", {}).items():
        # git's smart HTTP clients read plain text errors (git_http.py); the rest read JSON
        content = (
            {"text/plain": {"schema": {"type": "string"}}}
            if path.startswith("/git/")
            else {"application/json": {"schema": reference}}
        )
        for method, operation in operations.items():
            if method not in _METHODS or not isinstance(operation, dict):
                continue
            _state_rules(method, path, operation)
            public = operation.get(PERMISSION_KEY) == PUBLIC
            operation["security"] = [] if public else [{KEY_SCHEME: []}]
            if (method, path) in _BODIES:  # the route answers a JSONResponse it builds itself
                ok = operation.get("responses", {}).get("200", {})
                ok["content"] = {"application/json": {"schema": _BODIES[method, path]}}
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if method == "head":  # FastAPI documents the GET body it would have had
                for response in responses.values():
                    response.pop("content", None)
            for status, description in ERROR_STATUSES.items():
                if status not in responses:
                    responses[status] = {"description": description}
                    if method != "head":  # a HEAD answer has no body, so no media type
                        responses[status]["content"] = content
    return document


def _exact_integers(schema: Any) -> None:
    """An integer's bounds as integers, in place: FastAPI's document keeps a model's bounds as
    floats, and ``float(2**63 - 1)`` is ``2**63``, one past what the database holds."""
    if isinstance(schema, list):
        for item in schema:
            _exact_integers(item)
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "integer":
        for bound in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            value = schema.get(bound)
            if isinstance(value, float):
                schema[bound] = max(-MAX_INT64, min(MAX_INT64, int(value)))
    for value in schema.values():
        _exact_integers(value)


def _pattern(compiled: re.Pattern[str]) -> str:
    """A Python pattern as JSON Schema (ECMA 262) reads it: ``\\Z`` is its ``$``."""
    return compiled.pattern.replace("\\Z", "$")


def _string(*patterns: re.Pattern[str], **rules: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", **rules}
    if len(patterns) == 1:
        schema["pattern"] = _pattern(patterns[0])
    elif patterns:
        schema["anyOf"] = [{"pattern": _pattern(p)} for p in patterns]
    return schema


def request_body(
    model: type[BaseModel],
    patterns: dict[str, re.Pattern[str]],
    *,
    required: tuple[str, ...] = (),
    **rules: Any,
) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads ``model`` from its body by hand: the model's
    schema, each field of ``patterns`` held to the service's pattern (an empty string stays
    allowed where the field's default is one), ``rules`` replacing whole fields, and the
    fields the route itself requires."""
    schema = model.model_json_schema()
    if required:
        needed: set[str] = {*schema.get("required", ()), *required}
        schema["required"] = sorted(needed)
    properties: dict[str, Any] = schema.get("properties", {})
    for field, compiled in patterns.items():
        rule: dict[str, Any] = {"type": "string", "pattern": _pattern(compiled)}
        if properties[field].get("default") == "":
            rule = {"anyOf": [{"type": "string", "maxLength": 0}, rule]}
        _constrain(properties[field], rule)
    for field, rule in rules.items():
        properties[field] = rule
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": True, "content": content}}


_NAME = _string(NAME_PATTERN)
_SEMVER_RULE = _string(SEMVER_PATTERN)
# registry.specs.parse_spec reads version forms first: an alias is a name that reads as none
_ALIAS_RULE = {
    **_string(ALIAS_PATTERN),
    "not": {
        "anyOf": [
            {"enum": ["latest", "latestprivate"]},
            _string(HASH_PATTERN),
            _string(VERSIONISH_PATTERN),
        ]
    },
}
_SPEC_RULE = {
    "anyOf": [
        {"enum": ["latest", "latestPrivate"]},
        _string(SEMVER_PATTERN, PARTIAL_PATTERN, HASH_PATTERN),
        _ALIAS_RULE,
    ]
}
_SCOPE_RULE = {
    "anyOf": [
        {"enum": [*SCOPES, ALL]},
        {
            "type": "string",
            "maxLength": 200,
            "pattern": f"^(?:{'|'.join(sorted(PATTERNED))}):" + _pattern(SCOPE_PATTERN)[1:],
        },
    ]
}


def _any_case(text: str) -> str:
    """A pattern for ``text`` in any case of its ASCII letters (JSON Schema has no flags)."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in text)


_RESERVED_NAMES = "|".join(_any_case(n) for n in sorted(RESERVED_ENV_NAMES))
_RESERVED_PREFIXES = "|".join(_any_case(p) for p in RESERVED_ENV_PREFIXES)
SECRET_KEY_RULE = {
    **_string(ENV_NAME_PATTERN),
    "not": {"pattern": f"^(?:(?:{_RESERVED_NAMES})$|{_RESERVED_PREFIXES})"},
    "description": "The environment variable the model's workers see; not one the platform "
    f"reserves ({', '.join(sorted(RESERVED_ENV_NAMES))}, names starting with "
    f"{', '.join(RESERVED_ENV_PREFIXES)}, in any case)",
}
"""A secret's name, as registry.secrets.check_env_name takes it."""
SECRET_VALUE_RULE = {
    "type": "string",
    "pattern": "^[^\\x00]*$",
    # the rule is bytes of UTF-8, which JSON Schema cannot count: this many characters fit
    "maxLength": MAX_VALUE_BYTES // 4,
    "description": f"Text without NUL characters, at most {MAX_VALUE_BYTES} bytes of UTF-8",
}
"""A secret's value, as registry.secrets takes it."""

_FLAG = {"type": "string", "enum": ["true", "false", "1", "0"]}
# store.collections.check_segment's rules: no control characters, backslashes or slashes, not
# '.', '..' or a temporary upload's name (so: no leading dot), at most 255 bytes of UTF-8 (so:
# 63 characters)
_SEGMENT = "[^/\\\\\\x00-\\x1f\\x7f.][^/\\\\\\x00-\\x1f\\x7f]{0,62}"
_FILES = f"(?:/{_SEGMENT})*"  # none or more folders and files
_FILE = f"(?:/{_SEGMENT})+"


def _inner(compiled: re.Pattern[str]) -> str:
    """A whole-string pattern (``^...\\Z``) as a part of a longer one."""
    return compiled.pattern.removeprefix("^").removesuffix("\\Z").removesuffix("$")


def _data_path(
    files: str, *, collection: bool = True, example: str = "admin/data/a.txt"
) -> dict[str, Any]:
    """``owner/collection`` (or ``owner`` alone, unless ``collection``), then ``files``."""
    owner, name = _inner(NAME_PATTERN), _inner(COLLECTION_PATTERN)
    rest = f"/{name}{files}" if collection else f"(?:/{name}{files})?"
    # an example with a '/' also tells schemathesis that this parameter spans segments
    return {"type": "string", "pattern": f"^{owner}{rest}$", "examples": [example]}


def _connector_path(files: str) -> dict[str, Any]:
    """``bucket`` then ``files``; the bucket's own rule says ``$`` where its name ends."""
    bucket = _inner(BUCKET_PATTERN).replace("$)", "(?:/|$))")
    return {"type": "string", "pattern": f"^{bucket}{files}$", "examples": ["bucket/a.txt"]}


# store.model_space: what follows .algo names a model from outside (owner/model, the owner not
# temp or perm, which only model code may name alone), then temp/ or perm/; .session, files
_FOLDERS = "|".join(ALGO_FOLDERS)
_MODEL = f"/(?!(?:{_FOLDERS})/){_inner(NAME_PATTERN)}/{_inner(COLLECTION_PATTERN)}"


def _special(pattern: str, example: str) -> dict[str, Any]:
    return {"type": "string", "pattern": f"^{pattern}$", "examples": [example]}


_ALGO_ANY = _special(f"{_MODEL}(?:/(?:{_FOLDERS}){_FILES})?", "/admin/hello/temp")
_ALGO_FILE = _special(f"{_MODEL}/(?:{_FOLDERS}){_FILE}", "/admin/hello/temp/a.txt")
_SESSION_ANY = _special(_FILES, "/a/b")
_SESSION_FILE = _special(_FILE, "/a/b.txt")


PATH_RULES: dict[str, dict[str, Any]] = {
    "owner": _NAME,
    "name": _NAME,
    "org": _NAME,
    "member": _NAME,
    "principal": _NAME,
    "version": _SEMVER_RULE,
    "alias": _ALIAS_RULE,
    "spec": _SPEC_RULE,
    "algorithm_id": {"type": "integer", "minimum": 0, "maximum": MAX_INT64},  # Starlette's :int
}
"""A path parameter's rules beyond its type, by the parameter's name."""
QUERY_RULES: dict[str, dict[str, Any]] = {
    "version": _SEMVER_RULE,
    "anchor": _string(ANCHOR_PATTERN),
}
"""A query parameter's rules beyond its type, by the parameter's name."""
OPERATION_RULES: dict[tuple[str, ...], dict[str, Any]] = {
    # Algorithmia's version listing pages by the last version it gave
    ("/v1/algorithms/{owner}/{name}/versions", "marker"): _SEMVER_RULE,
    ("/v1/algorithms/{owner}/{name}/versions", "callable"): _FLAG,
    ("/v1/algorithms/{owner}/{name}/versions", "published"): _FLAG,
    # hosted data (store.collections): an owner, a collection, then files and folders
    ("get", "/v1/data/{path}", "path"): _data_path(_FILES, collection=False),
    ("head", "/v1/data/{path}", "path"): _data_path(_FILES, collection=False),
    ("put", "/v1/data/{path}", "path"): _data_path(_FILE),
    # POST creates a collection under an owner, or a folder in a collection or one of its folders
    ("post", "/v1/data/{path}", "path"): _data_path(_FILES, collection=False),
    ("patch", "/v1/data/{path}", "path"): _data_path("", example="admin/data"),  # an ACL's
    ("delete", "/v1/data/{path}", "path"): _data_path(_FILES),
    **{(m, "/v1/data/.algo{rest}", "rest"): _ALGO_ANY for m in ("get", "head", "post", "patch")},
    **{(m, "/v1/data/.algo{rest}", "rest"): _ALGO_FILE for m in ("put", "delete")},
    **{
        (m, "/v1/data/.session{rest}", "rest"): _SESSION_ANY
        for m in ("get", "head", "post", "patch")
    },
    **{(m, "/v1/data/.session{rest}", "rest"): _SESSION_FILE for m in ("put", "delete")},
    ("get", "/v1/connector/{connector}/{path}", "path"): _connector_path(_FILES),
    ("head", "/v1/connector/{connector}/{path}", "path"): _connector_path(_FILES),
    ("post", "/v1/connector/{connector}/{path}", "path"): _connector_path(_FILES),
    ("put", "/v1/connector/{connector}/{path}", "path"): _connector_path(_FILE),
    ("delete", "/v1/connector/{connector}/{path}", "path"): _connector_path(_FILE),
    ("/v1/connector/{connector}/{path}", "connector"): {
        "type": "string",
        "pattern": f"^s3(?:\\+{_inner(CONNECTOR_NAME_PATTERN)})?$",
        # a URL scheme holds no '_' (store.connector_space), though a connector's name may
        "not": {"pattern": "_"},
    },
}
"""One operation's parameter rules, by (path, name) or (method, path, name): they come first."""
# A call's input: the route reads the raw body (JSON, text or bytes), so FastAPI cannot see it.
_CALL_INPUT = {
    "required": True,
    "content": {
        "application/json": {"schema": {}},
        "text/plain": {"schema": {"type": "string"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}
# The hosted-data routes read these bodies by hand (protocols/data): store.collection_space's
# and store.connector_space's rules. A new collection's name is a collection's, a folder's any
# segment; the body cannot see which the path names, so it states the rule both accept.
_ACL = {
    "type": "object",
    "required": ["read"],
    "properties": {"read": {"type": "array", "items": {"type": "string", "enum": list(ACLS)}}},
}
_FOLDER_NAME = {"type": "string", "pattern": f"^{_SEGMENT}$"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


# A new version's archive is streamed as it comes, whatever its media type says
# (publishing.archive recognizes tar, gzip or not, and zip by their content).
_ARCHIVE = {"type": "string", "format": "binary"}
REQUEST_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/v1/data/{path}"): _json(
        {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": _string(
                    COLLECTION_PATTERN,
                    description="The new collection's (under an owner) or folder's (in one)",
                ),
                "acl": _ACL,
            },
        }
    ),
    ("patch", "/v1/data/{path}"): _json(
        {"type": "object", "required": ["acl"], "properties": {"acl": _ACL}}
    ),
    ("post", "/v1/connector/{connector}/{path}"): _json(
        {
            "type": "object",
            "required": ["name"],
            "properties": {"name": _FOLDER_NAME},
            "not": {"required": ["acl"]},  # a connector's settings decide who reads
        }
    ),
    # a model's collection holds only temp/ and perm/: that is the name at its root, any
    # folder's below; the body cannot see which the path names, so it states what both take
    ("post", "/v1/data/.algo{rest}"): _json(
        {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string", "enum": list(ALGO_FOLDERS)}},
        }
    ),
    ("post", "/v1/data/.session{rest}"): _json(
        {"type": "object", "required": ["name"], "properties": {"name": _FOLDER_NAME}}
    ),
    ("post", "/api/v1/models/{owner}/{name}/versions"): {
        "required": True,
        "description": "The model folder as a tar.gz or zip archive (`algora publish` packs one)",
        "content": {
            media: {"schema": _ARCHIVE}
            for media in ("application/gzip", "application/zip", "application/octet-stream")
        },
    },
}
"""The bodies routes read by hand, by (method, path), where no route states its own."""
_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("get", "/api/v1/audit"): {
        "type": "array",
        "items": {"$ref": f"#/components/schemas/{EVENT_SCHEMA['title']}"},
    },
}
_PROPERTY_RULES: dict[tuple[str, str], dict[str, Any]] = {
    ("CreateIn", "name"): _NAME,
    ("PrincipalIn", "name"): _NAME,
    ("ServiceAccountIn", "name"): _NAME,
    ("PromotionIn", "alias"): _ALIAS_RULE,
    ("PromotionIn", "version"): _SPEC_RULE,
    ("AliasIn", "version"): _SPEC_RULE,
    ("AliasIn", "shadow"): _SPEC_RULE,
    ("AliasIn", "versions"): {"propertyNames": {"maxLength": 100, **_SPEC_RULE}},
    ("ModelLimitIn", "model"): _string(MODEL_LIMIT_PATTERN),
}


def _constrain(schema: dict[str, Any], rule: dict[str, Any]) -> None:
    """``schema`` (FastAPI's, perhaps ``anyOf [T, null]``) narrowed to ``rule``, in place."""
    for option in schema.get("anyOf", [schema]):
        if option.get("type") != "null":
            option.update(copy.deepcopy(rule))


def _state_rules(method: str, path: str, operation: dict[str, Any]) -> None:
    if path.startswith("/v1/algo/"):
        operation.setdefault("requestBody", copy.deepcopy(_CALL_INPUT))
    if (method, path) in REQUEST_BODIES:
        operation.setdefault("requestBody", copy.deepcopy(REQUEST_BODIES[method, path]))
    for parameter in operation.get("parameters", []):
        name, schema = parameter.get("name", ""), parameter.get("schema", {})
        rule = (
            OPERATION_RULES.get((method, path, name))
            or OPERATION_RULES.get((path, name))
            or {"path": PATH_RULES, "query": QUERY_RULES}.get(parameter.get("in", ""), {}).get(name)
        )
        if rule is not None:
            _constrain(schema, rule)
        for option in schema.get("anyOf", [schema]):
            if option.get("type") == "integer":  # the database's integers: gateway/inputs.py
                option.setdefault("maximum", MAX_INT64)
                option.setdefault("minimum", -MAX_INT64)


def _state_properties(schemas: dict[str, Any]) -> None:
    """The models' fields held to the services' rules (once: a rule with ``anyOf`` would nest)."""
    for (model, field), rule in _PROPERTY_RULES.items():
        properties = schemas.get(model, {}).get("properties", {})
        if field in properties:
            _constrain(properties[field], rule)
    scopes = schemas.get("KeyIn", {}).get("properties", {}).get("scopes")
    if scopes is not None:
        _constrain(scopes, {"items": _SCOPE_RULE})


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# The database keeps naive UTC times; a response says so (``...Z``), as ``date-time`` requires.
UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]
