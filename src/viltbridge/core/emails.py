"""Email handling: normalising, tolerant base64 decoding (the launch path), delimited lists (InstructorEmails)."""

from __future__ import annotations

import base64
import binascii
import functools
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


# The plainest addresses, which `email_validator` always accepts: lower-case ASCII letters, digits and `._+-` before
# the @ (no leading, trailing or doubled dot; at most 64), LDH labels without doubled dashes after it, ending in an
# alphabetic top-level domain. They are most of what the launch path sees on every click, and this check costs a
# fraction of `validate_email`; anything else still goes through `validate_email`, which has the last word and the
# error message. tests/core/test_emails.py holds the differential property: nothing passes here that it refuses.
_PLAIN_EMAIL = re.compile(r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*@(?:[a-z0-9]+(?:-[a-z0-9]+)*\.)+([a-z]{2,63})")
_PLAIN_LABEL = re.compile(r"[a-z0-9-]{1,63}")
_SPECIAL_USE_TLDS = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})  # email_validator's list


def plainly_valid(candidate: str) -> bool:
    """True when `candidate` (normalised) is a plain address `validate_email` accepts; False says nothing."""
    found = _PLAIN_EMAIL.fullmatch(candidate)
    if found is None or len(candidate) > 254 or found.group(1) in _SPECIAL_USE_TLDS:
        return False
    local, _, domain = candidate.partition("@")
    return len(local) <= 64 and all(_PLAIN_LABEL.fullmatch(label) for label in domain.split("."))


def checked_email(raw: str, *, field: str) -> str:
    """Return the normalised email or raise InvalidInput naming the field and the bad value."""
    candidate = normalize_email(raw)
    if not candidate:
        raise InvalidInput(f"{field} is empty; send the person's email address, e.g. jane.doe@example.com.")
    if plainly_valid(candidate):
        return candidate
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
    return _decoded_email(encoded)


# The launch endpoint decodes the same few thousand learners' segments over and over while a class starts; the
# answer depends only on the segment, so the last ones are remembered (a refused segment raises and is not kept).
@functools.lru_cache(maxsize=4096)
def _decoded_email(encoded: str) -> str:
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
