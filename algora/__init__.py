"""Algora: publish any model as an immutable, versioned, governed REST service."""

from __future__ import annotations

__version__ = "0.1.0"

from algora.errors import AlgoraError
from algora.sdk.client import Client, ModelHandle
from algora.sdk.data import DataHandle

__all__ = ["AlgoraError", "Client", "DataHandle", "ModelHandle", "__version__"]
