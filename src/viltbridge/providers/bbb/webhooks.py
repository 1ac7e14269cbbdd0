"""BBB's learning-analytics callback (docs/providers.md §4.6): verifying it and reading attendance from it.

When a meeting created with `meta_analytics-callback-url` ends, BBB POSTs one JSON document per run of the meeting
with `Authorization: Bearer <JWT>`, the JWT signed HS512 with the shared secret and carrying only `exp` (now + 24 h).
Attendees are keyed by the `userID` given at join, with their join and leave times.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import jwt
from jwt.warnings import InsecureKeyLengthWarning

from viltbridge.core import json_text
from viltbridge.core.attendance import PERSONAL_ID
from viltbridge.core.errors import Forbidden, InvalidInput
from viltbridge.core.provider import ParticipantSegment, ProviderEvent

EVENT = "analytics-callback"


def verify_jwt(token: str, secret: str, now: datetime) -> dict[str, Any]:
    """The claims of an HS512 JWT signed with `secret` and not expired at `now`; Forbidden otherwise. Only HS512 is
    accepted (what BBB signs with), so a token naming `none` or another algorithm is refused before any check."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError:
        raise Forbidden("The BigBlueButton callback's token is not a JWT.") from None
    if header.get("alg") != "HS512":
        raise Forbidden("The BigBlueButton callback's token is not signed with HS512.")
    try:
        with warnings.catch_warnings():  # the secret is the BBB server's to choose; a short one is not our error
            warnings.simplefilter("ignore", InsecureKeyLengthWarning)
            # `now` is the caller's clock (the test clock in tests): expiry is checked against it, not wall time.
            claims: dict[str, Any] = jwt.decode(token, secret, algorithms=["HS512"],
                                                options={"require": ["exp"], "verify_exp": False})
    except jwt.MissingRequiredClaimError:
        raise Forbidden("The BigBlueButton callback's token has expired (or says no expiry).") from None
    except jwt.InvalidSignatureError:
        raise Forbidden("The BigBlueButton callback's signature does not match this connection's shared secret.") \
            from None
    except jwt.InvalidTokenError as err:
        raise Forbidden(f"The BigBlueButton callback's token is not valid: {err}.") from None
    expires = claims.get("exp")
    if not isinstance(expires, int | float) or expires <= now.timestamp():
        raise Forbidden("The BigBlueButton callback's token has expired (or says no expiry).")
    return claims


def bearer_token(headers: Mapping[str, str]) -> str:
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Forbidden("The BigBlueButton callback came without `Authorization: Bearer <token>`.")
    return token.strip()


def parse_callback(raw_body: bytes) -> dict[str, Any]:
    try:
        body = json_text.loads_storable(raw_body)
    except ValueError as exc:
        raise InvalidInput(f"The BigBlueButton callback was refused: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict) or not body.get("internal_meeting_id"):
        raise InvalidInput("The BigBlueButton callback has no `internal_meeting_id` and `data`.")
    return body


def callback_event(raw_body: bytes, now: datetime) -> ProviderEvent:
    """One stored event per run of a meeting: BBB sends a run's callback once, and a resend is the same run."""
    body = parse_callback(raw_body)
    finished = _time(body["data"].get("finish")) or now
    return ProviderEvent(dedupe_key=f"bbb:{EVENT}:{body['internal_meeting_id']}",
                         meeting_id=str(body.get("meeting_id") or "") or None, event=EVENT, occurred_at=finished,
                         raw=raw_body.decode("utf-8"))


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def _attendee_segments(attendee: Mapping[str, Any], instance: str,
                       finished: datetime | None) -> list[ParticipantSegment]:
    """Joins and leaves pair up in order; a join without a leave lasted until the meeting finished."""
    user_id = str(attendee.get("ext_user_id") or "")
    joins = [t for t in (_time(v) for v in attendee.get("joins") or []) if t is not None]
    leaves = [t for t in (_time(v) for v in attendee.get("leaves") or []) if t is not None]
    evidence = {PERSONAL_ID: user_id, "moderator": bool(attendee.get("moderator"))}
    return [ParticipantSegment(participant_key=user_id or str(attendee.get("name")), joined_at=joined,
                               left_at=leaves[index] if index < len(leaves) else finished, email=None,
                               display_name=attendee.get("name") or None, evidence=evidence, instance=instance)
            for index, joined in enumerate(sorted(joins))]


def segments_from_events(events: list[ProviderEvent]) -> list[ParticipantSegment]:
    segments: list[ParticipantSegment] = []
    for event in events:
        if event.event != EVENT:
            continue
        body = parse_callback(event.raw.encode("utf-8"))
        finished = _time(body["data"].get("finish"))
        for attendee in body["data"].get("attendees") or []:
            if isinstance(attendee, Mapping):
                segments.extend(_attendee_segments(attendee, str(body["internal_meeting_id"]), finished))
    return segments
