"""Authorization decisions. Scopes and grants grow here; callers only ask ``require``."""

from __future__ import annotations

from typing import Literal

from algora.auth.principals import Caller
from algora.db.tables import Model
from algora.errors import ModelNotFound, PermissionDenied

__all__ = ["Action", "can", "require"]

Action = Literal["call", "read", "manage", "publish"]


def can(caller: Caller, action: Action, model: Model) -> bool:
    if caller.is_admin or model.owner_id == caller.principal_id:
        return True
    if model.visibility == "public":
        return action in ("call", "read")
    return False


def require(caller: Caller, action: Action, model: Model) -> None:
    """Raise unless the caller may act on the model; hide private models from strangers."""
    if can(caller, action, model):
        return
    if not can(caller, "read", model):
        raise ModelNotFound(f"model '{model.owner.name}/{model.name}' does not exist")
    raise PermissionDenied(f"'{caller.name}' may not {action} '{model.owner.name}/{model.name}'")
