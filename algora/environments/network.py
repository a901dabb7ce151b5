"""What a child process that reaches a package index (uv, pip-audit) inherits from the
gateway's own environment: the proxy and certificate variables, and nothing else of the kind."""

from __future__ import annotations

__all__ = ["INDEX_ACCESS"]

INDEX_ACCESS = (
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
)
