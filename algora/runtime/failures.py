"""How a model's failure is told to its caller: the error's type and message, and a stack
trace with the runtime's own frames left out and paths shown relative to the model's folder or
its environment (so that no server path leaks). Standard library only.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

from .loader import LoadedModel
from .saved import InvalidRows

__all__ = ["error_object", "model_error", "show_paths_under"]


def model_error(model: LoadedModel, exc: BaseException) -> dict[str, Any]:
    """The error object for an exception the model's code raised while serving."""
    error = error_object("model_error", exc, skip_frames=1)
    if isinstance(exc, InvalidRows):  # a saved model's input is not rows it takes: the caller's
        error["code"] = "invalid_input"
    if model.error_type is not None:
        error["error_type"] = model.error_type(exc)
    return error


def error_object(code: str, exc: BaseException, *, skip_frames: int) -> dict[str, Any]:
    """The error object of the protocol; ``skip_frames`` drops the runtime's own frames.

    The stack trace goes to callers, so it names no place on the server's disk: frames of the
    runtime and of the import machinery are left out, and paths are shown relative to the
    model's folder (``model.py``), the environment (``<env>/lib/...``) or the interpreter
    (``<python>/lib/...``).
    """
    tb = exc.__traceback__
    for _ in range(skip_frames):
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
    report = traceback.TracebackException(type(exc), exc, tb)
    seen: set[int] = set()
    pending = [report]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        frames = [f for f in current.stack if not _hidden_frame(f.filename)]
        for frame in frames:
            frame.filename = _shown_path(frame.filename)
        current.stack = traceback.StackSummary.from_list(frames)
        if getattr(current, "filename", None):  # a SyntaxError's file
            current.filename = _shown_path(str(current.filename))
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    message = _shown_text(str(exc)) or type(exc).__name__
    stacktrace = _shown_text("".join(report.format()))
    if len(message) > _ERROR_TEXT_LIMIT:
        message = message[:_ERROR_TEXT_LIMIT] + " ... (truncated)"
    if len(stacktrace) > _ERROR_TEXT_LIMIT:  # the end of a trace says most
        stacktrace = "(truncated) ...\n" + stacktrace[-_ERROR_TEXT_LIMIT:]
    return {
        "code": code,
        "message": message,
        "error_type": type(exc).__name__,
        "stacktrace": stacktrace,
    }


_ERROR_TEXT_LIMIT = 64 * 1024
"""Most characters of an error's message and of its stack trace sent to the gateway."""


_RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))  # noqa: PTH100,PTH120 - stdlib-only runtime
_roots: dict[str, str] = {}
"""Absolute folder -> how it is shown in errors; the model's folder is added by ``main``."""


def show_paths_under(source: str) -> None:
    """Show the model's files (under its folder ``source``) relative to it, and the runtime's
    as ``<runtime>``, in the stack traces the caller sees."""
    _roots[source] = ""
    _roots[os.path.realpath(source)] = ""
    _roots[_RUNTIME_DIR] = "<runtime>"


def _display_roots() -> list[tuple[str, str]]:
    roots = dict(_roots)
    roots.setdefault(os.path.realpath(sys.prefix), "<env>")
    roots.setdefault(os.path.realpath(sys.base_prefix), "<python>")
    roots.setdefault(sys.prefix, "<env>")
    roots.setdefault(sys.base_prefix, "<python>")
    return sorted(roots.items(), key=lambda item: len(item[0]), reverse=True)


def _hidden_frame(filename: str) -> bool:
    folder = os.path.dirname(os.path.abspath(filename))  # noqa: PTH100,PTH120
    return folder == _RUNTIME_DIR or filename.startswith("<frozen importlib")


def _shown_path(filename: str) -> str:
    if not os.path.isabs(filename):  # noqa: PTH117 - "<string>", "<frozen ...>"
        return filename
    for root, shown in _display_roots():
        if filename.startswith(root + os.sep):
            rest = filename[len(root) + 1 :]
            return f"{shown}/{rest}" if shown else rest
    return "<outside>/" + os.path.basename(filename)  # noqa: PTH119


def _shown_text(text: str) -> str:
    """``text`` with every known absolute folder replaced as in :func:`_shown_path`."""
    for root, shown in _display_roots():
        text = text.replace(root + os.sep, f"{shown}/" if shown else "").replace(root, shown or ".")
    return text
