"""One way to build the frozen views that services hand out from the ORM rows they read."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["view_of"]

V = TypeVar("V", bound="DataclassInstance")


def view_of(view: type[V], row: object, **computed: Any) -> V:
    """A ``view`` (a frozen dataclass) whose fields are ``row``'s attributes of the same names,
    but for those given in ``computed`` (a name that differs, a copy, a lookup)."""
    fields = (f.name for f in dataclasses.fields(view) if f.init and f.name not in computed)
    return view(**{name: getattr(row, name) for name in fields}, **computed)
