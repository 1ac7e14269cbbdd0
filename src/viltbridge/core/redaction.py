"""Redaction: what may not appear in logs or the ledger (credentials, tokens, links that work as credentials)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***"

# joinUrl/start_url: a launch link or a host start link works as a credential for whoever holds it.
_SECRET_NAMES = re.compile(
    r"authorization|secret|password|token|api[_-]?key|private[_-]?key|cookie|signature|zak|join_?url|start_?url",
    re.IGNORECASE,
)
_URL_SECRETS = re.compile(
    r"((?:^|[?&#])(?:[^=&#]*(?:token|secret|password|zak|jwt|pwd|signature)[^=&#]*|tk)=)[^&#\s]+", re.IGNORECASE
)


def redact(value: Any) -> Any:
    """A copy of `value` with secret-looking keys replaced and secret query parameters blanked in strings."""
    if isinstance(value, Mapping):
        return {key: REDACTED if _SECRET_NAMES.search(str(key)) else redact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return _URL_SECRETS.sub(rf"\1{REDACTED}", value)
    return value
