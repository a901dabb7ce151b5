"""READMEs as HTML that cannot run: raw HTML is escaped, and links other than http(s), mailto
and relative ones are refused (markdown-it's ``validateLink``), so a README's ``<script>`` is
shown as text and a ``javascript:`` link is not made."""

from __future__ import annotations

from markdown_it import MarkdownIt
from markupsafe import Markup

__all__ = ["render_markdown"]

_SAFE_SCHEMES = ("http:", "https:", "mailto:")


def _validate_link(url: str) -> bool:
    scheme, sep, _rest = url.strip().lower().partition(":")
    if not sep or "/" in scheme or "?" in scheme or "#" in scheme:
        return True  # relative: no scheme at all
    return f"{scheme}:" in _SAFE_SCHEMES


_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
_MARKDOWN.validateLink = _validate_link  # type: ignore[method-assign]  # markdown-it's hook


def render_markdown(text: str) -> Markup:
    """``text`` (Markdown) as HTML safe to put in a page."""
    return Markup(_MARKDOWN.render(text))  # noqa: S704  # raw HTML is off: see the module
