"""The package's logger, and the DEBUG line each exchange with a provider leaves (secrets redacted, formatted only
when the line is written)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx2

from viltbridge.core.redaction import redact
from viltbridge.observability import redacted_body

# Named, not __name__: log lines have always carried "viltbridge.providers.http" (log handlers, tests and docs match
# on it), and every module of the package logs under that one name.
log = logging.getLogger("viltbridge.providers.http")


class _Lazy:
    """Formats only when a log line is actually written (the handler's filter drops most DEBUG records)."""

    def __init__(self, render: Callable[[], object]) -> None:
        self._render = render

    def __str__(self) -> str:
        return str(self._render())


def _body_for_log(content: bytes, content_type: str) -> Any:
    return redacted_body(content, content_type)


_LOGGED_RESPONSE_HEADERS = ("retry-after", "x-ratelimit-category", "x-ratelimit-type", "x-ratelimit-limit",
                            "x-ratelimit-remaining")


def log_exchange(provider: str, request: httpx2.Request, response: httpx2.Response | None, elapsed_ms: float,
                 failure: str | None) -> None:
    """One exchange with a provider at DEBUG: method, URL and bodies redacted, status (or failure), elapsed ms."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    request_body = _Lazy(lambda: _body_for_log(request.content, request.headers.get("content-type", "")))
    if response is None:
        log.debug("%s %s %s -> %s after %d ms; request body=%s", provider, request.method,
                  _Lazy(lambda: redact(str(request.url))), failure, elapsed_ms, request_body)
        return
    limits = {name: response.headers[name] for name in _LOGGED_RESPONSE_HEADERS if name in response.headers}
    log.debug("%s %s %s -> %s in %d ms; request body=%s; response body=%s%s", provider, request.method,
              _Lazy(lambda: redact(str(request.url))), response.status_code, elapsed_ms, request_body,
              _Lazy(lambda: _body_for_log(response.content, response.headers.get("content-type", ""))),
              f"; {limits}" if limits else "")
