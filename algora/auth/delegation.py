"""The credential that model code holds: what a call made from inside a model may do.

Every worker gets a credential from the gateway (``algora.gateway.channels``). It is worth
something only while the worker serves a call, and then it acts for that call:

- **for the original caller, bounded by the model.** Its rights are the intersection of the
  original caller's and the model owner's (down a chain of models, of every owner on the way):
  a model may call another model, or read a collection, only when both its caller and its
  owner may. Its scopes are the caller key's, narrowed to ``call``, ``models:read``,
  ``data:read`` and ``data:write``: no credential from inside a model manages keys,
  principals, models or aliases, or reads the audit log. Calls count against the caller's key
  and its rate limits; the audit row of everything it does names the call as its parent.
- **with the model's own rights**, whoever called: the model's own collection
  (``data://.algo/<owner>/<name>/...``, read and write), the call tree's scratch space
  (``data://.session/...``, read and write) and, read only, the collections whose owner lets
  "my models" read them (the ``algo://.my/*`` ACL, Algorithmia's "My Algorithms").

While the worker loads its model there is no caller and no call: the credential reads only
what the model itself may (its own collection, the ``algo://.my/*`` collections of its owner
and public ones), and calls nothing. The special collections are named as scopes on pseudo
resources (``data:read:.algo/<owner>/<name>``, ``data:write:.session/<id>``) that no user
collection can match, since no owner's name starts with a dot.
"""

from __future__ import annotations

import secrets

from algora.auth.principals import Caller, Delegation
from algora.auth.scopes import ALL, parse_scope
from algora.db.tables import Model, Principal
from algora.errors import BadRequest

__all__ = [
    "INSIDE_SCOPES",
    "accountable",
    "accountable_key_id",
    "algo_resource",
    "for_call",
    "for_load",
    "model_name",
    "narrow_scopes",
    "principal_caller",
    "session_resource",
]

INSIDE_SCOPES = ("call", "models:read", "data:read", "data:write")
"""The only scopes a credential inside a model may carry (each as the caller's key has it)."""


def algo_resource(model: str) -> str:
    """The scope resource of a model's own collection, ``.algo/<owner>/<name>``."""
    return f".algo/{model}"


def session_resource(session: str) -> str:
    """The scope resource of a call tree's scratch space, ``.session/<id>``."""
    return f".session/{session}"


def principal_caller(principal: Principal) -> Caller:
    """A principal's own rights, unnarrowed by any key (a model's owner's)."""
    return Caller(
        principal_id=principal.id,
        name=principal.name,
        is_admin=principal.is_admin,
        key_id="",
        scopes=(ALL,),
        memberships=tuple((m.org_id, m.role) for m in principal.memberships),
        kind=principal.kind,
    )


def narrow_scopes(scopes: tuple[str, ...] | list[str]) -> list[str]:
    """The caller key's scopes that a credential inside a model keeps, ``*`` spelled out.

    Scopes on the special collections (patterns starting with a dot) are dropped: each
    credential gets those of its own model and call tree only.
    """
    kept: list[str] = []
    for scope in scopes:
        try:
            base, pattern = parse_scope(scope)
        except BadRequest:
            continue  # a scope this version does not know grants nothing
        if base == ALL:
            kept.extend(INSIDE_SCOPES)
        elif base in INSIDE_SCOPES and not (pattern or "").startswith("."):
            kept.append(scope)
    return list(dict.fromkeys(kept))


def _own_scopes(model: str, session: str | None) -> list[str]:
    own = [f"data:read:{algo_resource(model)}", f"data:write:{algo_resource(model)}"]
    if session is not None:
        own += [f"data:read:{session_resource(session)}", f"data:write:{session_resource(session)}"]
    return own


def model_name(model: Model) -> str:
    """``owner/name`` of a model row (its owner loaded)."""
    return f"{model.owner.name}/{model.name}"


def for_call(
    caller: Caller, model: Model, *, request_id: str, session: str, deadline: float
) -> Caller:
    """The credential of ``model``'s code while it serves ``caller``'s call ``request_id``.

    ``caller`` may itself be a credential from inside a model (a model calling a model): the
    bounds accumulate, so rights only ever shrink down the chain.
    """
    bounds = caller.delegation.bounds if caller.delegation is not None else (caller,)
    bounds = (*bounds, principal_caller(model.owner))
    name = model_name(model)
    return Caller(
        principal_id=caller.principal_id,
        name=caller.name,
        is_admin=all(b.is_admin for b in bounds),
        key_id=f"call-{secrets.token_hex(8)}",  # opaque: the model never learns the caller's key
        scopes=tuple(narrow_scopes(caller.scopes) + _own_scopes(name, session)),
        limits=caller.limits,
        memberships=caller.memberships,
        kind=caller.kind,
        org_id=caller.org_id,
        delegation=Delegation(
            bounds=bounds,
            model=name,
            model_owner_id=model.owner_id,
            request_id=request_id,
            session=session,
            deadline=deadline,
        ),
    )


def accountable(caller: Caller) -> Caller:
    """The caller whose key a request counts against: for a credential inside a model, the
    original caller (see :func:`accountable_key_id`)."""
    if caller.delegation is not None and caller.delegation.bounds:
        return caller.delegation.bounds[0]
    return caller


def accountable_key_id(caller: Caller) -> str:
    """The key a caller's requests count against (rate limits) and are audited under: for a
    credential inside a model, the original caller's, which the model itself never sees."""
    if caller.delegation is not None and caller.delegation.bounds:
        return caller.delegation.bounds[0].key_id
    return caller.key_id


def for_load(model: Model) -> Caller:
    """The credential of ``model``'s code while it loads: the model's own rights, read only
    (and its own collection, read and write). It names the model's owner in the audit log."""
    name = model_name(model)
    return Caller(
        principal_id=model.owner_id,
        name=model.owner.name,
        is_admin=False,
        key_id=f"load-{model.id}",
        scopes=("data:read", *_own_scopes(name, None)),
        kind=model.owner.kind,
        delegation=Delegation(bounds=(), model=name, model_owner_id=model.owner_id),
    )
