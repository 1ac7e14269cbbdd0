"""Logging: correlation ids on every line, per-request debug detail, secrets redacted.

Cornerstone sends `debug: true` while it troubleshoots; for that request (and everything it causes at the
provider) DEBUG lines are written even when the server logs at INFO. Nothing secret reaches a log line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from typing import Any
from urllib.parse import parse_qsl

from viltbridge.core.redaction import redact

correlation_id: ContextVar[str] = ContextVar("correlation_id", default="-")
debug_requested: ContextVar[bool] = ContextVar("debug_requested", default=False)
# The request line noted by the middleware, logged when an authenticated caller's debug request is granted.
pending_debug_request: ContextVar[str | None] = ContextVar("pending_debug_request", default=None)

MAX_LOGGED_BODY = 64_000


def redacted_body(body: bytes, content_type: str) -> Any:
    """A body fit for a log line: JSON and form bodies with secret fields blanked; anything else only sized."""
    if not body:
        return None
    if len(body) > MAX_LOGGED_BODY:
        return f"<{len(body)} bytes, too large to log>"
    if "json" in content_type or body[:1] in (b"{", b"["):
        try:
            return redact(json.loads(body))
        except ValueError:
            return f"<{len(body)} bytes, not valid JSON>"
    if "x-www-form-urlencoded" in content_type:
        return redact(dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)))
    return f"<{len(body)} bytes of {content_type or 'unknown type'}>"


def grant_debug() -> None:
    """The caller is authenticated: honour its `debug: true` from here on, starting with the request itself."""
    pending = pending_debug_request.get()
    if pending is not None:
        debug_requested.set(True)
        logging.getLogger("viltbridge.http").debug(pending)
        pending_debug_request.set(None)


class _RequestContext(logging.Filter):
    """Adds the correlation id; lets DEBUG through only for requests that asked for it."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = correlation_id.get()
        return record.levelno >= self.level or debug_requested.get()


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "correlation_id": getattr(record, "correlation_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


# Line breaks and other control characters (C0, DEL, C1, U+2028/2029) that a client can put into a logged value.
_LINE_FORGING = re.compile("[\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029]")


class _OneLineFormatter(logging.Formatter):
    """Plain text, one line per message: a value a client sent (a date, a query parameter) that holds a line break
    is written escaped, so it cannot forge a log line of its own. Tracebacks keep their lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = _LINE_FORGING.sub(lambda found: found.group().encode("unicode_escape").decode("ascii"),
                                           record.message)
        return super().formatMessage(record)


def configure_logging(level: str = "INFO", as_json: bool = False) -> None:
    threshold = logging.getLevelName(level.upper())
    if not isinstance(threshold, int):
        threshold = logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestContext(threshold))
    handler.setFormatter(
        _JsonFormatter() if as_json
        else _OneLineFormatter("%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s")
    )
    package = logging.getLogger("viltbridge")
    package.handlers[:] = [handler]
    package.setLevel(logging.DEBUG)  # the handler's filter decides; see _RequestContext
    package.propagate = False
