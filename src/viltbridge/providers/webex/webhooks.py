"""Webex webhook deliveries (docs/providers.md §3.8): the `X-Spark-Signature` check on the raw body, the events kept
for live attendance, and join/leave segments rebuilt from stored `meetingParticipants` events."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from viltbridge.core import json_text
from viltbridge.core.errors import Forbidden
from viltbridge.core.provider import ParticipantSegment

SIGNATURE_HEADER = "X-Spark-Signature"
JOINED = "meetingParticipants.joined"
LEFT = "meetingParticipants.left"


class WebhookRejected(Forbidden):
    """A delivery that is not provably Webex's; `reason` is a short machine-readable word."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def sign(raw_body: bytes, secret: str) -> str:
    """What Webex puts in X-Spark-Signature: the hex HMAC-SHA1 of the raw body keyed with the webhook's secret."""
    return hmac.new(secret.encode(), raw_body, hashlib.sha1).hexdigest()


def verify_signature(raw_body: bytes, headers: Mapping[str, str], secret: str | None) -> None:
    """Accept only a delivery whose X-Spark-Signature matches `raw_body` (the bytes as received, no JSON round trip).
    Webex deliveries carry no timestamp, so replays cannot be refused here; stored events are deduplicated instead."""
    if not secret:
        raise WebhookRejected("no_secret", "Webex webhook refused: no webhook_secret is configured for this "
                                           "connection. Set it to the secret the webhooks were created with.")
    given = next((value for name, value in headers.items() if name.lower() == SIGNATURE_HEADER.lower()), "")
    if not given:
        raise WebhookRejected("missing_header", f"Webex webhook refused: the {SIGNATURE_HEADER} header is missing "
                                                "(was the webhook created without a secret?).")
    if not hmac.compare_digest(given.strip().lower().encode(), sign(raw_body, secret).encode()):
        raise WebhookRejected("bad_signature", f"Webex webhook refused: {SIGNATURE_HEADER} does not match the body. "
                                               "Check that webhook_secret is the secret the webhooks were created "
                                               "with.")


@dataclass(frozen=True)
class WebexEvent:
    event: str  # "{resource}.{event}", e.g. meetingParticipants.joined
    meeting_id: str | None
    occurred_at: datetime
    dedupe_key: str
    data: dict[str, Any]


def _iso(value: object) -> datetime | None:
    if not isinstance(value, str) or not value or value.startswith("1970-01-01"):
        return None  # Webex writes 1970-01-01 for "not known yet"
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _latest(data: Mapping[str, Any], field: str) -> datetime | None:
    """When a join/leave happened: the participant-level time spans first join to last leave [L], so a rejoin is
    dated by its device entry (one per join, §3.7), the latest one carrying the field."""
    devices = [d for d in data.get("devices") or [] if isinstance(d, Mapping)]
    times = [t for t in (_iso(d.get(field)) for d in devices) if t is not None]
    return max(times) if times else _iso(data.get(field))


def parse_event(raw_body: bytes, received_at: datetime) -> WebexEvent:
    """A delivery's event. Webex gives no delivery id, so the key is a digest of what happened (resource, event,
    data): a retried delivery gets the same key and is stored once."""
    try:
        body = json_text.loads_storable(raw_body)
    except ValueError as exc:
        raise WebhookRejected("bad_json", f"Webex webhook refused: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise WebhookRejected("bad_shape", "Webex webhook refused: the body has no `data` object.")
    data: dict[str, Any] = body["data"]
    name = f"{body.get('resource')}.{body.get('event')}"
    if name in (JOINED, LEFT):
        occurred = _latest(data, "leftTime" if name == LEFT else "joinedTime")
    else:
        occurred = _iso(data.get("end") if name == "meetings.ended" else data.get("start"))
    canonical = json.dumps([name, data], sort_keys=True, separators=(",", ":"))
    # Events are stored under the series id (what MeetingRef.meeting_id holds); the instance stays in `data`.
    instance = str(data.get("meetingId") or data.get("id") or "")
    return WebexEvent(event=name, meeting_id=instance.split("_I_")[0] or None,
                      occurred_at=occurred or received_at, data=data,
                      dedupe_key=hashlib.sha256(canonical.encode()).hexdigest())


def segments_from_events(events: list[WebexEvent]) -> list[ParticipantSegment]:
    """Segments from joined/left events in time order: a join opens one for the participant in that instance, a
    leave closes it. A leave without a join (its join delivery was lost) still gives a segment, from the leave's
    own `joinedTime`."""
    open_: dict[tuple[str, str], ParticipantSegment] = {}
    done: list[ParticipantSegment] = []
    for event in sorted((e for e in events if e.event in (JOINED, LEFT)), key=lambda e: e.occurred_at):
        data = event.data
        key = (str(data.get("meetingId") or ""), str(data.get("id") or data.get("email") or ""))
        if event.event == JOINED:
            if key not in open_:
                open_[key] = _segment(data, joined=event.occurred_at, left=None)
            continue
        started = open_.pop(key, None)
        joined = started.joined_at if started else _iso(data.get("joinedTime"))
        if joined is not None:
            done.append(_segment(data, joined=joined, left=event.occurred_at))
    return done + list(open_.values())


def _segment(data: Mapping[str, Any], *, joined: datetime, left: datetime | None) -> ParticipantSegment:
    evidence = {key: data[key] for key in ("id", "invitee", "host", "coHost") if key in data}
    return ParticipantSegment(participant_key=str(data.get("id") or data.get("email")), joined_at=joined, left_at=left,
                              email=data.get("email") or None, display_name=data.get("displayName") or None,
                              evidence=evidence, instance=str(data.get("meetingId") or ""))
