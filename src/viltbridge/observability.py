"""Logging: correlation ids on every line, per-request debug detail, secrets redacted.

Cornerstone sends `debug: true` while it troubleshoots; for that request (and everything it causes at the
provider) DEBUG lines are written even when the server logs at INFO. Nothing secret reaches a log line.

One handler on the root logger writes every line, viltbridge's and the libraries' (uvicorn, huey, httpx2, stamina's
retries, Python warnings), in one format: plain text, or one JSON object per line (`VILTBRIDGE_LOG_FORMAT=json`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from viltbridge.core.redaction import redact

if TYPE_CHECKING:
    from stamina.instrumentation import RetryDetails

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
    """One JSON object per line for log shippers. json.dumps escapes every control character (and, as ASCII, U+2028
    and U+2029), so a value a client sent cannot break a record in two; a traceback is one field."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        correlation = getattr(record, "correlation_id", "-")
        if correlation != "-":
            entry["correlation_id"] = correlation
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
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


LOG_FORMATS = ("plain", "json")


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one handler `configure_logging` installs (a class of its own so a second call replaces it)."""


def _log_retry(details: RetryDetails) -> None:
    """stamina's retry hook, through the standard logger like every other line. stamina's default writes through
    structlog's own renderer to stdout, in a format of its own."""
    logging.getLogger("stamina").warning(
        "retry %d scheduled in %.2f s (%.2f s waited so far): %s", details.retry_num, details.wait_for,
        details.waited_so_far, str(details.caused_by) or type(details.caused_by).__name__)


def configure_logging(level: str = "INFO", log_format: str = "plain") -> None:
    """Write every log line, viltbridge's and the libraries', to stderr in one format ("plain" or "json").
    viltbridge logs at `level` (DEBUG too for a request that asked for it); libraries only their warnings and
    errors, as before: their INFO and DEBUG output (each HTTP request, SQL statements) is a developer's switch."""
    import stamina.instrumentation

    threshold = logging.getLevelName(level.upper())
    if not isinstance(threshold, int):
        threshold = logging.INFO
    handler = _Handler(sys.stderr)
    handler.addFilter(_RequestContext(threshold))
    handler.setFormatter(
        _JsonFormatter() if log_format == "json"
        else _OneLineFormatter("%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [known for known in root.handlers if not isinstance(known, _Handler)] + [handler]
    root.setLevel(logging.WARNING)
    package = logging.getLogger("viltbridge")
    package.handlers[:] = []
    package.setLevel(logging.DEBUG)  # the handler's filter decides; see _RequestContext
    package.propagate = True
    logging.captureWarnings(True)  # Python's warnings as log lines ("py.warnings"), not bare text
    stamina.instrumentation.set_on_retry_hooks([_log_retry])
