"""The base of the SDK's objects that hold a connection: ``with`` closes them."""

from __future__ import annotations

from typing import Self


class Closing:
    """``with thing:`` calls ``thing.close()`` at the end, whatever happened."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
