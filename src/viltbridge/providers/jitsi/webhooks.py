"""JaaS webhooks (docs/providers.md §6.3): the `X-Jaas-Signature` check on the raw body, the events kept, and
join/leave segments rebuilt from the stored events.

Pure functions: no clock of their own (the caller passes `now`), no I/O.

- signature: `X-Jaas-Signature: t=<unix seconds>,v1=<base64 HMAC-SHA256(secret, "<t>.<raw body>")>`; other schemes
  are ignored, several `v1` values are allowed (one must match), compared in constant time; a timestamp further
  than five minutes from `now` is refused (a replay, or a wrong clock).
- envelope: `idempotencyKey` (the dedupe key: JaaS retries and may send a delivery twice), `customerId`, `appId`,
  `eventType`, `sessionId` (one run of the room), `timestamp` (epoch ms; deliveries may arrive out of order, so
  this, not the arrival, orders them), `fqn` (`<AppID>/<room>`), `data`.
- participant `data`: `moderator`, `name`, `email`, `id` (the token's `context.user.id`), `participantJid` (one
  connection), `isBreakout`, `breakoutRoomId`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from viltbridge.core import json_text
from viltbridge.core.attendance import PERSONAL_ID
from viltbridge.core.errors import Forbidden, InvalidInput
from viltbridge.core.provider import ParticipantSegment, ProviderEvent

__all__ = [
    "DEFAULT_TOLERANCE", "KEPT_EVENTS", "PARTICIPANT_JOINED", "PARTICIPANT_LEFT", "ROOM_CREATED", "ROOM_DESTROYED",
    "SIGNATURE_HEADER", "JaasEvent", "MalformedWebhook", "WebhookRejected", "parse_event", "provider_event", "room_of",
    "segments_from_events", "sign", "signature_header", "verify_signature",
]

SIGNATURE_HEADER: Final = "X-Jaas-Signature"
DEFAULT_TOLERANCE: Final = timedelta(minutes=5)

ROOM_CREATED: Final = "ROOM_CREATED"
ROOM_DESTROYED: Final = "ROOM_DESTROYED"
PARTICIPANT_JOINED: Final = "PARTICIPANT_JOINED"
PARTICIPANT_LEFT: Final = "PARTICIPANT_LEFT"
# What attendance is rebuilt from. Other events (recordings, transcriptions, chat, polls, usage, ...) are verified
# and acknowledged, and not kept: nothing here reads them.
KEPT_EVENTS: Final = frozenset({ROOM_CREATED, ROOM_DESTROYED, PARTICIPANT_JOINED, PARTICIPANT_LEFT})

_TIMESTAMP: Final = re.compile(r"[0-9]{1,12}")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class WebhookRejected(Forbidden):
    """Not provably a fresh JaaS delivery. `reason`, for logs: no_secret, missing_header, bad_header, bad_timestamp,
    no_v1, mismatch, stale, future."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class MalformedWebhook(InvalidInput):
    """Signed, but not a JaaS event this code can read."""


# --- signature ---------------------------------------------------------------------------------------------------


def sign(raw_body: bytes, secret: str, timestamp: int) -> str:
    """The `v1` value: base64 of HMAC-SHA256(secret, "<timestamp>.<raw body>")."""
    digest = hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + raw_body, hashlib.sha256)
    return base64.b64encode(digest.digest()).decode("ascii")


def signature_header(raw_body: bytes, secret: str, timestamp: int) -> str:
    """The whole `X-Jaas-Signature` value JaaS sends for `raw_body` at `timestamp` (Unix seconds)."""
    return f"t={timestamp},v1={sign(raw_body, secret, timestamp)}"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    found = {value for key, value in headers.items() if key.lower() == name.lower()}
    if len(found) > 1:
        raise WebhookRejected("bad_header", f"JaaS webhook refused: the {name} header appears more than once with "
                                            "different values.")
    return next(iter(found), None)


def _parts(value: str) -> tuple[list[str], list[str]]:
    """The `t` and `v1` values of a signature header; unknown schemes are ignored."""
    stamps: list[str] = []
    signatures: list[str] = []
    for item in value.split(","):
        key, sep, part = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            stamps.append(part.strip())
        elif key == "v1":
            signatures.append(part.strip())
    return stamps, signatures


def _decoded(signature: str) -> bytes | None:
    try:
        return base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return None


def verify_signature(raw_body: bytes, headers: Mapping[str, str], secret: str | None, now: datetime,
                     tolerance: timedelta = DEFAULT_TOLERANCE) -> None:
    """Accept only a delivery with a `v1` signature of `raw_body` (the bytes as received) made with `secret`, dated
    within `tolerance` of `now`. Raises `WebhookRejected` (a Forbidden) naming what is wrong."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if not secret:
        raise WebhookRejected("no_secret", "JaaS webhook refused: no webhook_secret is configured for this "
                                           "connection. Copy the endpoint's signing secret from the JaaS console.")
    value = _header(headers, SIGNATURE_HEADER)
    if not value:
        raise WebhookRejected("missing_header", f"JaaS webhook refused: the {SIGNATURE_HEADER} header is missing.")
    stamps, signatures = _parts(value)
    if len(set(stamps)) != 1 or not _TIMESTAMP.fullmatch(stamps[0]):
        raise WebhookRejected("bad_timestamp", f"JaaS webhook refused: {SIGNATURE_HEADER} must carry one "
                                               "t=<Unix seconds>.")
    if not signatures:
        raise WebhookRejected("no_v1", f"JaaS webhook refused: {SIGNATURE_HEADER} has no v1 signature (the only "
                                       "scheme viltbridge checks).")
    timestamp = int(stamps[0])
    expected = base64.b64decode(sign(raw_body, secret, timestamp))
    # Every candidate is compared (no early exit), each in constant time.
    matched = False
    for candidate in signatures:
        given = _decoded(candidate) or b""
        matched |= hmac.compare_digest(expected, given)
    if not matched:
        raise WebhookRejected("mismatch", "JaaS webhook refused: the signature does not match the body. Check that "
                                          "webhook_secret is this endpoint's signing secret in the JaaS console, and "
                                          "that nothing between JaaS and viltbridge rewrites the body.")
    skew = (now - _EPOCH) - timedelta(seconds=timestamp)
    if skew > tolerance:
        raise WebhookRejected("stale", f"JaaS webhook refused: it was signed {skew.total_seconds():.0f} s ago, more "
                                       f"than the {tolerance.total_seconds():.0f} s allowed (a replay, or this "
                                       "server's clock is wrong).")
    if -skew > tolerance:
        raise WebhookRejected("future", f"JaaS webhook refused: it is dated {-skew.total_seconds():.0f} s in the "
                                        f"future, more than the {tolerance.total_seconds():.0f} s allowed (check "
                                        "this server's clock).")


# --- events ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JaasEvent:
    event: str  # eventType
    dedupe_key: str
    app_id: str | None
    room: str | None
    session_id: str
    occurred_at: datetime
    data: dict[str, Any]


def room_of(fqn: object) -> tuple[str | None, str | None]:
    """(AppID, room) from `fqn`: `<AppID>/<room>` at JaaS; a bare room (or `room@conference.domain`) from a
    self-hosted event module [L]."""
    if not isinstance(fqn, str) or not fqn.strip():
        return None, None
    prefix, _, room = fqn.strip().rpartition("/")
    room = room.split("@", 1)[0]
    return prefix or None, room.lower() or None


def _moment(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return _EPOCH + timedelta(milliseconds=value)
    except OverflowError:
        return None


def parse_event(raw_body: bytes, received_at: datetime) -> JaasEvent:
    """A delivery's event. Dated by its `timestamp` (epoch ms), else by its arrival."""
    try:
        body = json_text.loads_storable(raw_body)
    except ValueError as exc:
        raise MalformedWebhook(f"JaaS webhook refused: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("eventType"), str):
        raise MalformedWebhook("JaaS webhook refused: the body is not a JaaS event (no eventType).")
    data = body.get("data")
    if data is not None and not isinstance(data, dict):
        raise MalformedWebhook("JaaS webhook refused: `data` is not an object.")
    key = body.get("idempotencyKey")
    if not isinstance(key, str) or not key:
        # Without JaaS's key a redelivery is recognised by its content.
        key = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    app_id, room = room_of(body.get("fqn"))
    return JaasEvent(event=body["eventType"], dedupe_key=f"jitsi:{key}",
                     app_id=str(body.get("appId") or app_id or "") or None, room=room,
                     session_id=str(body.get("sessionId") or ""),
                     occurred_at=_moment(body.get("timestamp")) or received_at, data=data or {})


def provider_event(event: JaasEvent, raw_body: bytes) -> ProviderEvent:
    return ProviderEvent(dedupe_key=event.dedupe_key, meeting_id=event.room, event=event.event,
                         occurred_at=event.occurred_at, raw=raw_body.decode("utf-8"))


def _flag(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _device(data: Mapping[str, Any]) -> str:
    """One connection: its XMPP jid (a person on two devices is two), else the token's user id."""
    return str(data.get("participantJid") or data.get("id") or data.get("email") or data.get("name") or "")


def _segment(event: JaasEvent, left_at: datetime | None) -> ParticipantSegment:
    data = event.data
    user_id = str(data.get("id") or "")
    evidence: dict[str, Any] = {"moderator": _flag(data.get("moderator"))}
    if user_id:
        evidence[PERSONAL_ID] = user_id
    if data.get("participantJid"):
        evidence["participant_jid"] = str(data["participantJid"])
    if _flag(data.get("isBreakout")):
        evidence["breakout_room_id"] = str(data.get("breakoutRoomId") or "")
    return ParticipantSegment(participant_key=user_id or _device(data), joined_at=event.occurred_at, left_at=left_at,
                              email=str(data.get("email") or "") or None, display_name=str(data.get("name") or "")
                              or None, evidence=evidence, instance=event.session_id)


def segments_from_events(events: Iterable[JaasEvent]) -> list[ParticipantSegment]:
    """Join/leave segments per connection (participantJid, else user id), per run of the room (sessionId) and per
    breakout room, in `timestamp` order whatever the arrival order:

    - a join opens a segment (a second join of an open connection changes nothing); a leave closes it;
    - a leave without a join is dropped: JaaS retries deliveries, so its join arrives later and the pair is
      rebuilt then (a segment invented now would stay in the ledger beside the real one);
    - a join still open when its run's ROOM_DESTROYED happened closes then; otherwise it stays open (left_at None:
      the person is still there, or their leave is on its way).
    """
    events = list(events)
    participants = sorted((e for e in events if e.event in (PARTICIPANT_JOINED, PARTICIPANT_LEFT)),
                          key=lambda e: (e.occurred_at, e.event != PARTICIPANT_JOINED, e.dedupe_key))
    destroyed: dict[str, datetime] = {}
    for event in events:
        if event.event == ROOM_DESTROYED:
            known = destroyed.get(event.session_id)
            destroyed[event.session_id] = event.occurred_at if known is None else max(known, event.occurred_at)
    open_: dict[tuple[str, str, str], JaasEvent] = {}
    done: list[ParticipantSegment] = []
    for event in participants:
        key = (event.session_id, _device(event.data), str(event.data.get("breakoutRoomId") or ""))
        if event.event == PARTICIPANT_JOINED:
            open_.setdefault(key, event)
        elif (joined := open_.pop(key, None)) is not None:
            done.append(_segment(joined, event.occurred_at))
    for joined in open_.values():
        end = destroyed.get(joined.session_id)
        done.append(_segment(joined, end if end is not None and end >= joined.occurred_at else None))
    return sorted(done, key=lambda s: (s.joined_at, s.participant_key))
