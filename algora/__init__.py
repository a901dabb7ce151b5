"""Algora: publish any model as an immutable, versioned, governed REST service."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from algora.errors import AlgoraError
    from algora.sdk.client import Client, ModelHandle
    from algora.sdk.data import DataHandle
    from algora.sdk.reporting import report

__all__ = ["AlgoraError", "Client", "DataHandle", "ModelHandle", "__version__", "report"]

# Imported on first use: processes that need one submodule (the audit writer, the CLI's
# quick commands) should not pay for the SDK's HTTP client.
_LAZY = {
    "AlgoraError": "algora.errors",
    "Client": "algora.sdk.client",
    "ModelHandle": "algora.sdk.client",
    "DataHandle": "algora.sdk.data",
    "report": "algora.sdk.reporting",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'algora' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
