"""Signed, per-person launch tokens: the `/l/<token>` links the LMS hands to people.

A token names the connection, the session row, the person's LMS email, and when it was issued. It carries no role:
the role (host, co-host, attendee) is decided when the link is followed, from the session as it is then.
It is signed with HMAC-SHA256; verification accepts any of the configured keys so keys can rotate. Tokens are
stateless so the launch endpoint the LMS calls writes nothing; the click on the link is what gets recorded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from viltbridge.core.errors import Forbidden, InvalidInput

TOKEN_VERSION = 2
DAMAGED = "This launch link is damaged. Go back to your learning system and click Launch again."


@dataclass(frozen=True)
class LaunchClaims:
    connection_id: int
    session_id: int
    email: str
    issued_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_launch(claims: LaunchClaims, key: bytes) -> str:
    payload = json.dumps(
        [TOKEN_VERSION, claims.connection_id, claims.session_id, claims.email,
         int(claims.issued_at.timestamp())],
        separators=(",", ":"),
    ).encode("utf-8")
    body = _b64(payload)
    signature = _b64(hmac.new(key, body.encode("ascii"), hashlib.sha256).digest())
    return f"{body}.{signature}"


def verify_launch(token: str, keys: list[bytes], *, now: datetime, max_age: timedelta) -> LaunchClaims:
    """Return the claims, or raise: InvalidInput for a mangled link, Forbidden for a forged or expired one."""
    body, dot, signature = token.partition(".")
    if not dot or not body or not signature:
        raise InvalidInput("This launch link is incomplete. Go back to your learning system and click Launch again.")
    if not (body.isascii() and signature.isascii()):
        raise InvalidInput(DAMAGED)
    try:
        _unb64(signature)
    except ValueError:
        raise InvalidInput(DAMAGED) from None
    # Compare the encoded text, not decoded bytes: the decoder ignores stray characters and the unused bits of the
    # last one, so several spellings decode to the same signature. Only the one we issued is valid.
    given = signature.encode("ascii")
    expected_any = False
    for key in keys:
        expected = _b64(hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()).encode("ascii")
        if hmac.compare_digest(expected, given):
            expected_any = True
            break
    if not expected_any:
        raise Forbidden("This launch link is not valid. Go back to your learning system and click Launch again.")
    try:
        version, connection_id, session_id, email, issued = json.loads(_unb64(body))
        if version != TOKEN_VERSION:
            raise ValueError(version)
        claims = LaunchClaims(int(connection_id), int(session_id), str(email),
                              datetime.fromtimestamp(int(issued), UTC))
    except (ValueError, TypeError):
        raise InvalidInput(DAMAGED) from None
    if now - claims.issued_at > max_age:
        raise Forbidden("This launch link has expired. Go back to your learning system and click Launch again.")
    return claims
