"""The web UI under ``/ui``: server-rendered pages over the same services the APIs call.

A thin adapter, like ``algora.protocols``: each page parses its request, calls services with the
signed-in principal's :class:`~algora.auth.principals.Caller`, and renders a Jinja2 template.
It never imports the database. ``algora.app`` mounts :func:`create_ui`; nothing else imports it.
"""

from __future__ import annotations

from algora.web.app import create_ui, front_door

__all__ = ["create_ui", "front_door"]
