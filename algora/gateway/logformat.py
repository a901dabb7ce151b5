"""The server's log output: text for a terminal (the default), or one JSON object per line for
a log pipeline (``ALGORA_LOG_FORMAT=json``), carrying the request id, model and version of the
request being served when the line was written."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

from algora.gateway.auditing import CURRENT_TRAIL

__all__ = ["JsonFormatter", "configure_logging"]

LogFormat = Literal["text", "json"]
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_QUIET = ("httpx", "alembic")
"""Libraries whose INFO lines (each request of the example publisher, each migration step) a
user does not need."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (RFC 3339, UTC), level, logger, message, and, while a
    request is served, its ``request_id``, ``model``, ``version`` and (with tracing on)
    ``trace_id``; an exception's traceback as ``exc_info``."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        trail = CURRENT_TRAIL.get()
        if trail is not None:
            for field, value in (
                ("request_id", trail.request_id),
                ("model", trail.resource),
                ("version", trail.version),
                ("trace_id", trail.trace_id),
            ):
                if value:
                    line[field] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(level: str, log_format: LogFormat) -> None:
    """The root logger at ``level``, in ``log_format``, on standard error."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(_TEXT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in _QUIET:
        logging.getLogger(noisy).setLevel(logging.WARNING)
