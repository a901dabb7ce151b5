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
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator

__all__ = ["ERROR_STATUSES", "UtcDateTime", "document_errors"]

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


def document_errors(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with every operation's error statuses documented (changed in place)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR_SCHEMA] = _error_schema()
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    reference = {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}
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
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status, description in ERROR_STATUSES.items():
                if status not in responses:
                    responses[status] = {"description": description}
                    if method != "head":  # a HEAD answer has no body, so no media type
                        responses[status]["content"] = content
    return document


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# The database keeps naive UTC times; a response says so (``...Z``), as ``date-time`` requires.
UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]
