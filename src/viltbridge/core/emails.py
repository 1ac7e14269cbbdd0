"""Email handling: normalising, tolerant base64 decoding (the launch path), delimited lists (InstructorEmails)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from urllib.parse import unquote

from email_validator import EmailNotValidError, validate_email

from viltbridge.core.errors import InvalidInput

_LIST_SEPARATORS = re.compile(r"[,;\s]+")
_BASE64_CHARS = re.compile(r"^[A-Za-z0-9+/_\-]*={0,2}$")


def normalize_email(raw: str) -> str:
    """Trim and lower-case; emails are compared case-insensitively throughout (the contract says so)."""
    return raw.strip().lower()


def checked_email(raw: str, *, field: str) -> str:
    """Return the normalised email or raise InvalidInput naming the field and the bad value."""
    candidate = normalize_email(raw)
    if not candidate:
        raise InvalidInput(f"{field} is empty; send the person's email address, e.g. jane.doe@example.com.")
    try:
        validate_email(candidate, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidInput(f"{field} '{raw.strip()[:200]}' is not a valid email address: {exc}") from None
    return candidate


def decode_base64_email(encoded: str) -> str:
    """Decode the `{base64EncodedEmail}` path segment tolerantly; returns the valid email, trimmed, case kept.

    Accepts the standard or URL-safe alphabet, with or without padding, and percent-encoding on top
    (`%3D` for `=`), since LMSs and proxies differ in what they send.
    """
    text = unquote(encoded).strip()
    if not text or not _BASE64_CHARS.match(text):
        raise InvalidInput(
            "The user part of the launch URL is not base64. Send the learner's email encoded with base64 "
            "(standard or URL-safe), e.g. amFuZUBleGFtcGxlLmNvbQ for jane@example.com."
        )
    unpadded = text.rstrip("=").replace("-", "+").replace("_", "/")
    if len(unpadded) % 4 == 1:
        raise InvalidInput("The user part of the launch URL is truncated base64; send the whole encoded email.")
    padded = unpadded + "=" * (-len(unpadded) % 4)
    try:
        raw = base64.b64decode(padded, validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidInput(
            "The user part of the launch URL does not decode to text; send the learner's email encoded with base64."
        ) from None
    checked_email(decoded, field="The email in the launch URL")
    # As the LMS spelled it: attendance is reported back in the spelling the LMS knows (compare normalised).
    return decoded.strip()


def encode_base64_email(email: str) -> str:
    """The encoding Cornerstone uses (standard alphabet, padded); used by tests and the conformance driver."""
    return base64.b64encode(email.encode("utf-8")).decode("ascii")


def parse_email_list(value: object, *, field: str) -> list[str]:
    """Parse `InstructorEmails`: a JSON array or a string delimited by `,` `;` or whitespace.

    Returns normalised, de-duplicated emails in their original order.
    """
    if value is None:
        return []
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):  # RecursionError: nested thousands deep inside one JSON string
            raise InvalidInput(
                f"{field} looks like a JSON list but is not valid JSON; send e.g. "
                '["ann@example.com", "bob@example.com"] or ann@example.com, bob@example.com.'
            ) from None
    items: Iterable[object]
    if isinstance(value, str):
        items = [part for part in _LIST_SEPARATORS.split(value) if part]
    elif isinstance(value, list):
        items = value
    else:
        raise InvalidInput(f"{field} must be a list of emails or a string of emails separated by commas.")
    result: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidInput(f"{field} contains {item!r}, which is not an email address.")
        for part in _LIST_SEPARATORS.split(item):
            if not part:
                continue
            email = checked_email(part, field=field)
            if email not in result:
                result.append(email)
    return result
