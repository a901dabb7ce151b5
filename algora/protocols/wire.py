"""What the wings' wire models share."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel

__all__ = ["FromView"]


class FromView(BaseModel):
    """A wire model whose fields a service's view (a frozen dataclass) has by the same names;
    the view's other fields stay off the wire."""

    @classmethod
    def of(cls, view: object) -> Self:
        return cls.model_validate(view, from_attributes=True)
