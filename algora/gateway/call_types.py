"""What the call path takes and gives: a :class:`Call` (parsed by an adapter from its wire
format), the :class:`Served` answer, and the request ids that name calls."""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from algora.auth.policy import can
from algora.auth.principals import Caller
from algora.auth.scopes import has_scope
from algora.db.tables import Model, Version
from algora.gateway.auditing import AuditTrail
from algora.workers.spec import CallResult, ContentType

__all__ = ["Call", "Served", "may_manage", "new_request_id"]

_REQUEST_PREFIX = os.urandom(8).hex()
_request_numbers = itertools.count(1)


def new_request_id() -> str:
    """Unique across gateways (a random per-process prefix) and cheap: no syscall per call."""
    return f"req-{_REQUEST_PREFIX}{next(_request_numbers):012x}"


@dataclass(frozen=True)
class Call:
    caller: Caller
    owner: str
    name: str
    spec: str | None
    content_type: ContentType
    payload: bytes
    timeout: float | None = None
    request_id: str = ""
    trail: AuditTrail = field(default_factory=AuditTrail)
    """Where the call path notes the version it resolved, for the audit row (also on failure)."""
    admitted: bool = False
    """True when the adapter already took the call's rate-limit token (see ``admit``)."""
    stdout: bool = False
    """Whether the caller asks for the model's captured stdout (see :attr:`Served.stdout`)."""
    fields: Mapping[str, Any] = field(default_factory=dict)
    """What the content type adds to the worker's call frame (see ``CallRequest.fields``)."""
    shadow_of: str = ""
    """For a shadow's copy: the request id of the call copied (its answer is recorded so)."""


@dataclass(frozen=True)
class Served:
    """What answered a call: the version actually served and its result."""

    model: Model
    version: Version
    result: CallResult
    request_id: str
    stdout: str | None = None
    """The call's captured stdout: only when asked for and the caller may manage the model."""


def may_manage(caller: Caller, model: Model) -> bool:
    """Whether the caller may manage the model, its key's scopes included."""
    return can(caller, "manage", model) and has_scope(
        caller.scopes, "models:manage", None, is_admin=caller.is_admin
    )
