"""Thin routes as rows of a table, for every wing.

Most routes do the same few things: take the caller from the scope they need, call one
service method (off the event loop unless it is a coroutine) with the caller and the values
their path, query and body name, note what the audit row needs, and render the answer. Such a
route is one :class:`Op` row, and :func:`add_routes` turns a table of rows into the router's
routes. A route that does more (streams a body, answers 202 or 200, writes a second audit row,
checks a right before it reads the body) is written out as a function beside them.

A row declares what the decorator of a written-out route would: its method and path, its name
(the start of the OpenAPI operation id), its summary, its audit action (``x-algora-audit``)
and, through the caller's :class:`~algora.gateway.permissions.Needs`, its permission; the
table, the tags. The endpoint a row becomes has the signature a written-out one would have
(built with :mod:`inspect`, which FastAPI reads), so the OpenAPI document, the validation and
the strict decoding of :class:`~algora.gateway.permissions.PermissionRoute` are the same.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request

from algora.gateway.auditing import AuditTrail, trail_of
from algora.gateway.deps import platform_of
from algora.gateway.permissions import audited
from algora.platform import Platform

__all__ = ["NOTHING", "Answer", "Op", "Takes", "add_routes", "as_is", "each", "one"]

_PATH_NAMES = re.compile(r"{(\w+)(?::\w+)?}")
_KEYWORD = inspect.Parameter.KEYWORD_ONLY


@dataclass(frozen=True)
class Answer:
    """How a route renders what its service method returned, and the response model (the
    return annotation a written-out route would have) the document shows."""

    model: Any
    render: Callable[..., Any]
    request: bool = False
    """``render`` takes the request too (after the answer): for links to the server."""


def one(model: Any) -> Answer:
    """One view, rendered by ``model.of``."""
    return Answer(model, model.of)


def each(model: Any) -> Answer:
    """A list of views, each rendered by ``model.of``."""
    return Answer(list[model], lambda views: [model.of(view) for view in views])


def as_is(model: Any) -> Answer:
    """The service's answer as it is (already in the wire's shape)."""
    return Answer(model, lambda value: value)


NOTHING = Answer(None, lambda _value: None)
"""No body (a 204)."""


@dataclass(frozen=True)
class Takes:
    """A route's JSON body (``model``) and what of it its service method takes (``args``)."""

    model: Any
    args: Callable[[Any], tuple[Any, ...]]
    kwargs: Callable[[Any], Mapping[str, Any]] = lambda _body: {}
    default: Any = inspect.Parameter.empty
    """The body's value when the request has none (no default: the body is required)."""


@dataclass(frozen=True)
class Op:
    """One thin route.

    - ``route``: ``"METHOD /path"``; ``name``: the endpoint's name (the operation id's start);
    - ``call``: the service method (unbound: ``Accounts.orgs``), called with the service, the
      caller, then the path's values and the ``query`` parameters in order, then what ``body``
      takes from the JSON body; in a thread, unless it is a coroutine function;
    - ``caller``: the caller's type, ``Annotated[Caller, Depends(Needs(...))]``;
    - ``audit``: the action its audit rows record (``always``: reads too);
    - ``resource``: the audit row's resource, formatted from the path's values and ``body``
      before the call (``"org/{org}/{member}"``, ``"principal/{body.name}"``); ``noted``:
      what the answer adds to the audit row, after the call;
    - ``forget``: the change may move what calls resolve to (a deprecation, an alias), so the
      call path forgets its cached resolutions;
    - ``types``: the path parameters that are not plain strings; ``query``: the query
      parameters, ``name: (annotation, default)``; ``options``: the rest of what FastAPI's
      decorator takes.
    """

    route: str
    name: str
    call: Callable[..., Any]
    caller: Any
    answer: Answer
    audit: str
    always: bool = False
    summary: str | None = None
    status_code: int | None = None
    body: Takes | None = None
    resource: str | None = None
    noted: Callable[[Any, AuditTrail], None] | None = None
    forget: bool = False
    types: Mapping[str, Any] = field(default_factory=dict)
    query: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    def endpoint(self, service: Callable[[Platform], object]) -> Callable[..., Any]:
        """The endpoint a written-out route would be, signature included."""
        _method, path = self.route.split(" ", 1)
        path_names = _PATH_NAMES.findall(path)
        names = [*path_names, *self.query]
        call, answer_of, body, resource = self.call, self.answer, self.body, self.resource
        noted, forget = self.noted, self.forget
        awaited = inspect.iscoroutinefunction(call)

        async def endpoint(request: Request, caller: object, **values: Any) -> Any:
            args, kwargs = [values[n] for n in names], {}
            if body is not None:
                args.extend(body.args(values["body"]))
                kwargs = dict(body.kwargs(values["body"]))
            if resource is not None:
                trail_of(request).resource = resource.format(**values)
            platform = platform_of(request)
            if awaited:
                answer = await call(service(platform), caller, *args, **kwargs)
            else:  # it holds database sessions and files, which block: off the event loop
                answer = await asyncio.to_thread(call, service(platform), caller, *args, **kwargs)
            if noted is not None:
                noted(answer, trail_of(request))
            if forget:
                platform.calls.forget()
            if answer_of.request:
                return answer_of.render(answer, request)
            return answer_of.render(answer)

        parameters = [
            inspect.Parameter("request", _KEYWORD, annotation=Request),
            inspect.Parameter("caller", _KEYWORD, annotation=self.caller),
            *(
                inspect.Parameter(n, _KEYWORD, annotation=self.types.get(n, str))
                for n in path_names
            ),
            *(
                inspect.Parameter(n, _KEYWORD, annotation=annotation, default=default)
                for n, (annotation, default) in self.query.items()
            ),
        ]
        if body is not None:
            parameters.append(
                inspect.Parameter("body", _KEYWORD, annotation=body.model, default=body.default)
            )
        signature = inspect.Signature(parameters, return_annotation=self.answer.model)
        endpoint.__signature__ = signature  # type: ignore[attr-defined]  # FastAPI reads it
        endpoint.__name__ = endpoint.__qualname__ = self.name
        return endpoint


def add_routes(
    router: APIRouter,
    service: Callable[[Platform], object],
    *ops: Op,
    tags: tuple[str, ...] = (),
) -> None:
    """Add each row's route to ``router``, tagged ``tags``; ``service`` picks the service the
    rows' methods belong to from the platform."""
    for op in ops:
        method, path = op.route.split(" ", 1)
        router.add_api_route(
            path,
            op.endpoint(service),
            methods=[method],
            name=op.name,
            summary=op.summary,
            tags=list(tags) or None,
            status_code=op.status_code,
            openapi_extra=audited(op.audit, always=op.always),
            **op.options,
        )
