"""Signed, per-person launch tokens: the `/l/<token>` links the LMS hands to people.

A token names the connection, the session row, the person's LMS email, and when it was issued. It carries no role:
the role (host, co-host, attendee) is decided when the link is followed, from the session as it is then.
It is signed with HMAC-SHA256; verification accepts any of the configured keys so keys can rotate. Tokens are
stateless so the launch endpoint the LMS calls writes nothing; the click on the link is what gets recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from viltbridge.core.errors import Forbidden, InvalidInput
from viltbridge.core.sealed import ForgedSeal, seal, unseal

TOKEN_VERSION = 2
FORGED = "This launch link is not valid. Go back to your learning system and click Launch again."
DAMAGED = "This launch link is damaged. Go back to your learning system and click Launch again."


class LaunchLinkExpired(Forbidden):
    """A genuine link, issued longer ago than links live: the person only needs a fresh one."""


@dataclass(frozen=True)
class LaunchClaims:
    connection_id: int
    session_id: int
    email: str
    issued_at: datetime


def sign_launch(claims: LaunchClaims, key: bytes) -> str:
    return seal(
        [TOKEN_VERSION, claims.connection_id, claims.session_id, claims.email, int(claims.issued_at.timestamp())], key
    )


def verify_launch(token: str, keys: list[bytes], *, now: datetime, max_age: timedelta) -> LaunchClaims:
    """Return the claims, or raise: InvalidInput for a mangled link, Forbidden for a forged or expired one."""
    if "." not in token:
        raise InvalidInput("This launch link is incomplete. Go back to your learning system and click Launch again.")
    try:
        version, connection_id, session_id, email, issued = unseal(token, keys)
        if version != TOKEN_VERSION:
            raise ValueError(version)
        claims = LaunchClaims(int(connection_id), int(session_id), str(email),
                              datetime.fromtimestamp(int(issued), UTC))
    except ForgedSeal:
        raise Forbidden(FORGED) from None
    except (ValueError, TypeError, OverflowError, OSError):
        raise InvalidInput(DAMAGED) from None
    if now - claims.issued_at > max_age:
        raise LaunchLinkExpired("This launch link has expired. Go back to your learning system and click Launch "
                                "again.")
    return claims
