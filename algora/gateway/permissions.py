"""Every route declares the permission it needs; the OpenAPI document shows it.

A route takes its caller from a :class:`Needs` dependency (``Depends(Needs("models:read"))``),
which authenticates the key and refuses it (403) unless it holds the scope. Routers use
:class:`PermissionRoute`, which writes the scope into the route's OpenAPI operation as
``x-algora-permission``; routes that authenticate in their own way (the Algorithmia call routes,
health) declare it with ``openapi_extra=declare(...)``. ``public`` means no key at all;
``authenticated`` any valid key. The authorization matrix test reads the document and fails
for any operation without a declaration.

Every route also declares the action its audit rows record, in the same place:
``openapi_extra=audited("key.create")`` (or ``declare("call", audit="model.call")``), shown in
the document as ``x-algora-audit``. A request that changes something (any method but GET, HEAD
and OPTIONS) is recorded under its route's action, and so is every refusal (401, 403); a read is
recorded when its route says ``always=True`` (whoami, the audit log's own reads). The audit
middleware (:mod:`algora.gateway.auditing`) reads the declaration from the matched route, so
there is no second table of paths; a test fails for any route that declares no action.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from algora.auth.delegation import accountable_key_id
from algora.auth.policy import require_scope
from algora.auth.principals import Caller
from algora.gateway.auditing import AUDIT_KEY
from algora.gateway.deps import current_caller, platform_of
from algora.gateway.inputs import strict_json_handler

__all__ = [
    "AUDIT_KEY",
    "AUTHENTICATED",
    "PERMISSION_KEY",
    "PUBLIC",
    "Needs",
    "PermissionRoute",
    "audited",
    "declare",
    "unaudited",
    "undeclared",
]

PERMISSION_KEY = "x-algora-permission"
PUBLIC = "public"
AUTHENTICATED = "authenticated"


class Needs:
    """The dependency of a route that needs ``scope`` (or only a valid key: ``AUTHENTICATED``).

    ``write=True`` also takes a token from the key's rate limit (management writes share the
    bucket of the key's calls).
    """

    def __init__(self, scope: str, *, write: bool = False) -> None:
        self.scope = scope
        self.write = write

    async def __call__(self, request: Request) -> Caller:
        caller = await current_caller(request)
        if self.scope != AUTHENTICATED:
            require_scope(caller, self.scope)
        if self.write:
            platform_of(request).limiter.check(accountable_key_id(caller), None, caller.limits)
        return caller

    def __repr__(self) -> str:
        return f"Needs({self.scope!r}, write={self.write})"


def declare(permission: str, *, audit: str | None = None, always: bool = False) -> dict[str, Any]:
    """``openapi_extra`` for a route that checks its permission itself (and, with ``audit``,
    names its audit action as :func:`audited` does)."""
    return {PERMISSION_KEY: permission, **(audited(audit, always=always) if audit else {})}


def audited(action: str, *, always: bool = False) -> dict[str, Any]:
    """``openapi_extra`` naming the action the route's audit rows record; ``always`` records
    its reads too (not only its changes and refusals)."""
    return {AUDIT_KEY: {"action": action, "record": "always" if always else "changes"}}


def _needs(dependant: Dependant) -> Needs | None:
    for sub in dependant.dependencies:
        if isinstance(sub.call, Needs):
            return sub.call
        found = _needs(sub)
        if found is not None:
            return found
    return None


class PermissionRoute(APIRoute):
    """A route whose OpenAPI operation shows the scope its :class:`Needs` dependency checks."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        needs = _needs(self.dependant)
        if needs is not None:
            self.openapi_extra = {**(self.openapi_extra or {}), PERMISSION_KEY: needs.scope}

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, with the JSON body and integer queries decoded strictly."""
        return strict_json_handler(self, super().get_route_handler())


def undeclared(document: dict[str, Any]) -> list[str]:
    """``METHOD path`` of every operation in an OpenAPI document without a permission."""
    missing = []
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if isinstance(operation, dict) and not operation.get(PERMISSION_KEY):
                missing.append(f"{method.upper()} {path}")
    return missing


def unaudited(document: dict[str, Any]) -> list[str]:
    """``METHOD path`` of every operation in an OpenAPI document without an audit action."""
    missing = []
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            declaration = operation.get(AUDIT_KEY) if isinstance(operation, dict) else None
            if not (isinstance(declaration, dict) and declaration.get("action")):
                missing.append(f"{method.upper()} {path}")
    return missing
