"""Hosted data, Algorithmia-compatible: ``/v1/data/...`` (collections, a model's own ``.algo``
space and a call's ``.session``) and ``/v1/connector/...`` (S3 connectors), one set of routes
over the spaces of :mod:`algora.store.spaces`."""

from __future__ import annotations

from algora.protocols.data.routes import router

__all__ = ["router"]
