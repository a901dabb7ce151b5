"""Algorithmia's algorithm names in any case: ``demo/Hello`` names Algora's ``demo/hello``.

Algorithmia's algorithms had CamelCase names (``demo/Hello``), and applications, ADK algorithms
calling algorithms, and git remotes still name them so. Algora's owner and model names are
lowercase (``algora.modelfolder.manifest.NAME_PATTERN``; an Algorithmia algorithm published here
takes its ``algoname`` in lowercase, see ``algora.modelfolder.algorithmia``), so folding a
name to lowercase can only reach the model it means, never another one.

This plain ASGI middleware folds the owner and the name in Algorithmia's paths before routing
and auditing, so every route below it, and the audit log, sees Algora's names:

- ``/v1/algo/{owner}/{name}[/{version}]`` (calls; a version spec such as ``latestPrivate`` is
  left as it is),
- ``/v1/algorithms/{owner}/{name}[/...]`` (management; build ids and versions are left as
  they are),
- ``/git/{owner}/{name}.git/...`` (the git remote).

``create`` names the new algorithm in its body; its route folds that name the same way.
Algora's own API (``/api/v1``) takes names exactly as they are.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["AlgorithmiaNamesMiddleware", "fold_path"]

_PREFIXES: dict[tuple[str, ...], int] = {
    ("v1", "algo"): 2,
    ("v1", "algorithms"): 2,
    ("git",): 1,
}
"""Leading segments of an Algorithmia path -> how many segments they span (owner follows)."""


def fold_path(path: str) -> str:
    """``path`` with the owner and name of an Algorithmia path in lowercase; any other path
    as it is."""
    parts = path.split("/")
    for prefix, length in _PREFIXES.items():
        if tuple(parts[1 : 1 + length]) == prefix:
            start = 1 + length
            for index in range(start, min(start + 2, len(parts))):
                parts[index] = parts[index].lower()
            return "/".join(parts)
    return path


class AlgorithmiaNamesMiddleware:
    """Fold the owner and name of Algorithmia's paths to lowercase (see the module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            folded = fold_path(path)
            if folded != path:
                # raw_path keeps what the client sent; routing and URLs read "path".
                scope = {**scope, "path": folded}
        await self.app(scope, receive, send)
