"""A provider's own error code and message, read from the error bodies providers send."""

from __future__ import annotations

from typing import Any

import httpx2


def _error_details(response: httpx2.Response) -> tuple[int | str | None, str, Any]:
    """(code, message, body) from the usual error bodies: Zoom `{"code","message","errors"}`, OAuth
    `{"error","reason"|"error_description"}`, Graph `{"error": {"code","message"}}`."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    code: int | str | None = None
    message = ""
    if isinstance(body, dict):
        nested = body.get("error")
        if isinstance(nested, dict):
            code, message = nested.get("code"), str(nested.get("message") or "")
        else:
            raw_code = body.get("code", nested)
            code = raw_code if isinstance(raw_code, int | str) else None
            message = str(body.get("message") or body.get("reason") or body.get("error_description") or "")
        problems = body.get("errors")
        if isinstance(problems, list):
            details = "; ".join(f"{p.get('field', '?')}: {p.get('message', '')}".strip()
                                for p in problems[:10] if isinstance(p, dict))
            if details:
                message = f"{message} ({details})" if message else details
    if not message:
        message = response.reason_phrase or f"HTTP {response.status_code}"
    return code, message[:1000], body
