"""``Allow`` on a 405 lists every method the path has (RFC 9110, section 15.5.6).

Starlette's router answers a method no route of a path takes with 405 and the methods of the
*first* route whose path matched, so ``PUT /api/v1/keys`` said ``Allow: GET`` although the path
also takes POST. This plain ASGI piece leaves every answer alone but a 405, whose ``Allow`` it
replaces with the methods of all the routes that match the path: the same set the OpenAPI
document lists for it (``OPTIONS`` is not served, so it answers 405 like any other).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from starlette.datastructures import MutableHeaders
from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AllowedMethodsMiddleware", "allowed_methods"]

_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _routes(routes: Sequence[BaseRoute]) -> Iterator[Route]:
    for route in routes:
        if isinstance(route, Route):
            yield route
        # FastAPI (0.16x) keeps an included router whole, behind a wrapper, instead of copying
        # its routes; the gateway includes its routers without a prefix
        router = getattr(route, "original_router", None)
        if isinstance(router, Router):
            yield from _routes(router.routes)


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> list[str]:
    """The methods of every route in ``routes`` whose path matches ``scope``'s, in a set order;
    empty when none matches."""
    methods: set[str] = set()
    for route in _routes(routes):
        if route.methods:
            match, _child = route.matches(scope)
            if match is not Match.NONE:
                methods |= route.methods
    return sorted(methods, key=lambda m: (_ORDER.index(m) if m in _ORDER else len(_ORDER), m))


class AllowedMethodsMiddleware:
    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_allowed(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                methods = allowed_methods(self.routes, scope)
                if methods:
                    headers = MutableHeaders(scope=message)
                    headers["Allow"] = ", ".join(methods)
            await send(message)

        await self.app(scope, receive, send_allowed)
