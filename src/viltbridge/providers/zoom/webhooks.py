"""Zoom webhooks: signature check, the URL-validation challenge, event parsing, and join/leave segments.

Pure functions: no web framework, no database, no clock of their own (the caller passes `now`). A receiver does,
in this order: `verify_signature` on the raw body exactly as received, then `parse_event`; it answers
`endpoint.url_validation` with `url_validation_response`, stores other events once by `ZoomEvent.dedupe_key`,
and rebuilds a meeting's segments from every stored event with `segments_from_events` (order does not matter).

Facts (docs/providers.md §1.7, and the official Rivet SDK event typings for which fields are optional):
- signature: `x-zm-signature: v0=` + hex HMAC-SHA256(secret token, `v0:{x-zm-request-timestamp}:{raw body}`), the
  timestamp in Unix seconds. Zoom gives no replay window; five minutes is ours (a parameter).
- body: `{"event", "event_ts" (epoch ms), "payload": {"account_id", "object": {...}}}`; `object.id` is the meeting
  number (int64, sent as a string), `object.uuid` the instance (new on every start).
- `participant.user_id` is a per-join id (new on every rejoin); `participant_uuid` follows one device across
  reconnects within an instance; `participant_user_id`/`id` is the Zoom account user, empty for guests; `email`
  is often empty for people outside the host's account, so `registrant_id` is the strongest link to a learner.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from viltbridge.core import json_text
from viltbridge.core.attendance import PERSONAL_ID
from viltbridge.core.errors import Forbidden, InvalidInput
from viltbridge.core.provider import EMAIL_VERIFIED_BY, ParticipantSegment

__all__ = [
    "DEFAULT_TOLERANCE",
    "ENDPOINT_URL_VALIDATION",
    "MEETING_ENDED",
    "MEETING_PARTICIPANT_JOINED",
    "MEETING_PARTICIPANT_JOINED_WAITING_ROOM",
    "MEETING_PARTICIPANT_LEFT",
    "MEETING_PARTICIPANT_LEFT_WAITING_ROOM",
    "MEETING_STARTED",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "MalformedWebhook",
    "ParticipantEvent",
    "WebhookRejected",
    "ZoomEvent",
    "parse_event",
    "segments_from_events",
    "url_validation_response",
    "verify_signature",
]

SIGNATURE_HEADER: Final = "x-zm-signature"
TIMESTAMP_HEADER: Final = "x-zm-request-timestamp"
DEFAULT_TOLERANCE: Final = timedelta(minutes=5)

ENDPOINT_URL_VALIDATION: Final = "endpoint.url_validation"
MEETING_STARTED: Final = "meeting.started"
MEETING_ENDED: Final = "meeting.ended"
MEETING_PARTICIPANT_JOINED: Final = "meeting.participant_joined"
MEETING_PARTICIPANT_LEFT: Final = "meeting.participant_left"
MEETING_PARTICIPANT_JOINED_WAITING_ROOM: Final = "meeting.participant_joined_waiting_room"
MEETING_PARTICIPANT_LEFT_WAITING_ROOM: Final = "meeting.participant_left_waiting_room"

_MEETING_EVENTS: Final = frozenset({
    MEETING_STARTED, MEETING_ENDED, MEETING_PARTICIPANT_JOINED, MEETING_PARTICIPANT_LEFT,
    MEETING_PARTICIPANT_JOINED_WAITING_ROOM, MEETING_PARTICIPANT_LEFT_WAITING_ROOM,
})
_PARTICIPANT_EVENTS: Final = frozenset({
    MEETING_PARTICIPANT_JOINED, MEETING_PARTICIPANT_LEFT,
    MEETING_PARTICIPANT_JOINED_WAITING_ROOM, MEETING_PARTICIPANT_LEFT_WAITING_ROOM,
})

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_TIMESTAMP_RE: Final = re.compile(r"[0-9]{1,12}")  # Unix seconds; 12 digits is far beyond any real date
_HEX_RE: Final = re.compile(r"[0-9a-f]{64}")  # Zoom sends lowercase hex; anything else is not its signature


# ---------------------------------------------------------------------------------------------------------------
# Errors


class WebhookRejected(Forbidden):
    """The request is not a genuine, fresh Zoom delivery. `reason` is a short code for logs and metrics:
    no_secret, missing_header, duplicate_header, bad_timestamp, bad_scheme, bad_hex, mismatch, stale, future."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class MalformedWebhook(InvalidInput):
    """The body is not a Zoom event we can read. `field` is the dotted path of the offending field, if any."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# ---------------------------------------------------------------------------------------------------------------
# Signature


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup; the same header twice with different values is refused, not guessed."""
    found = {value for key, value in headers.items() if key.lower() == name}
    if len(found) > 1:
        raise WebhookRejected("duplicate_header", f"Zoom webhook refused: the {name} header appears more than "
                                                  "once with different values.")
    return next(iter(found), None)


def _expected_signature(secret: str, timestamp: str, raw_body: bytes) -> str:
    message = b"v0:" + timestamp.encode("ascii") + b":" + raw_body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify_signature(raw_body: bytes, headers: Mapping[str, str], secret: str, now: datetime,
                     tolerance: timedelta = DEFAULT_TOLERANCE) -> None:
    """Accept only a delivery signed with `secret` whose timestamp is within `tolerance` of `now` (inclusive).

    `raw_body` must be the bytes exactly as received (no JSON round trip). Header names are matched without
    regard to case. Raises `WebhookRejected` (a `Forbidden`) with a message naming what is wrong.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime (e.g. tzinfo=UTC)")
    if tolerance < timedelta(0):
        raise ValueError("tolerance must not be negative")
    if not secret:
        raise WebhookRejected("no_secret", "Zoom webhook refused: no webhook secret token is configured for this "
                                           "connection. Copy it from the Zoom app's Access page into the settings.")
    timestamp = _header(headers, TIMESTAMP_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    missing = [name for name, value in ((TIMESTAMP_HEADER, timestamp), (SIGNATURE_HEADER, signature)) if not value]
    if missing:
        raise WebhookRejected("missing_header", f"Zoom webhook refused: the {' and '.join(missing)} header"
                                                f"{'s are' if len(missing) > 1 else ' is'} missing.")
    assert timestamp is not None and signature is not None
    if not _TIMESTAMP_RE.fullmatch(timestamp):
        raise WebhookRejected("bad_timestamp", f"Zoom webhook refused: {TIMESTAMP_HEADER} is {timestamp[:40]!r}, "
                                               "not a Unix time in seconds.")
    scheme, sep, digest = signature.partition("=")
    if not sep or scheme != "v0":
        raise WebhookRejected("bad_scheme", f"Zoom webhook refused: {SIGNATURE_HEADER} must start with 'v0=' "
                                            "(the only signature scheme Zoom uses).")
    if not _HEX_RE.fullmatch(digest):
        raise WebhookRejected("bad_hex", f"Zoom webhook refused: {SIGNATURE_HEADER} must be 'v0=' followed by 64 "
                                         "lowercase hex digits.")
    expected = _expected_signature(secret, timestamp, raw_body)
    if not hmac.compare_digest(expected.encode("ascii"), digest.encode("ascii")):
        raise WebhookRejected("mismatch", "Zoom webhook refused: the signature does not match the body. Check that "
                                          "the secret token is the Zoom app's current one, and that nothing between "
                                          "Zoom and viltbridge rewrites the body.")
    skew = (now - _EPOCH) - timedelta(seconds=int(timestamp))  # positive: sent in the past
    if skew > tolerance:
        raise WebhookRejected("stale", f"Zoom webhook refused: it was signed {_seconds(skew)} ago, more than the "
                                       f"{_seconds(tolerance)} allowed (a replay, or this server's clock is wrong).")
    if -skew > tolerance:
        raise WebhookRejected("future", f"Zoom webhook refused: it is dated {_seconds(-skew)} in the future, more "
                                        f"than the {_seconds(tolerance)} allowed (check this server's clock).")


def _seconds(delta: timedelta) -> str:
    return f"{delta.total_seconds():.0f} s"


def url_validation_response(payload: Mapping[str, Any] | ZoomEvent, secret: str) -> dict[str, str]:
    """The answer to Zoom's `endpoint.url_validation` challenge (sent on setup and every 72 hours).

    `payload` may be the parsed body, its inner `payload` object, or the `ZoomEvent` from `parse_event`. Verify
    the request's signature first: the challenge is signed like every other delivery.
    """
    if not secret:
        raise WebhookRejected("no_secret", "Zoom URL validation refused: no webhook secret token is configured for "
                                           "this connection.")
    if isinstance(payload, ZoomEvent):
        if payload.event != ENDPOINT_URL_VALIDATION or payload.plain_token is None:
            raise MalformedWebhook(f"Zoom event {payload.event!r} is not an {ENDPOINT_URL_VALIDATION} challenge.",
                                   "event")
        plain = payload.plain_token
    else:
        event = payload.get("event")
        if event is not None and event != ENDPOINT_URL_VALIDATION:
            raise MalformedWebhook(f"Zoom event {event!r} is not an {ENDPOINT_URL_VALIDATION} challenge.", "event")
        inner = payload.get("payload")
        source: Mapping[str, Any] = inner if isinstance(inner, Mapping) else payload
        plain = _plain_token(source, "payload.plainToken" if isinstance(inner, Mapping) else "plainToken")
    digest = hmac.new(secret.encode("utf-8"), plain.encode("utf-8"), hashlib.sha256).hexdigest()
    return {"plainToken": plain, "encryptedToken": digest}


def _plain_token(source: Mapping[str, Any], path: str) -> str:
    value = source.get("plainToken")
    if not isinstance(value, str) or not value:
        raise MalformedWebhook(f"Zoom URL validation body has no {path} (a non-empty string).", path)
    return value


# ---------------------------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True)
class ParticipantEvent:
    """The `participant` object of a participant event, typed. Empty strings (Zoom's "not known") become None."""

    user_id: str  # per-join participant id: new on every join, shared by that join's leave
    user_name: str | None
    participant_uuid: str | None  # one device across reconnects within an instance
    participant_user_id: str | None  # the Zoom account user (`participant_user_id`, else `id`); None for guests
    email: str | None
    registrant_id: str | None
    customer_key: str | None
    phone_number: str | None
    at: datetime  # when it happened: join_time, leave_time, or date_time (waiting room), UTC
    join_time: datetime | None = None
    leave_time: datetime | None = None
    leave_reason: str | None = None


@dataclass(frozen=True)
class ZoomEvent:
    """One parsed delivery. Unknown events keep only the envelope (and `payload` for whoever wants more).

    `dedupe_key` is stable for one logical event however often it is delivered (Zoom retries, duplicates,
    redelivery with a fresh timestamp) and differs for a different occurrence (a reconnect is a new join).
    """

    event: str
    event_ts: datetime
    dedupe_key: str
    account_id: str | None = None
    meeting_id: str | None = None  # the meeting number, int64, as a string
    meeting_uuid: str | None = None  # the instance
    host_id: str | None = None
    topic: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None  # meeting.ended
    participant: ParticipantEvent | None = None
    plain_token: str | None = None  # endpoint.url_validation
    payload: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


def parse_event(raw_body: bytes) -> ZoomEvent:
    """Read one Zoom webhook body. Known meeting events are checked field by field (a `MalformedWebhook` names
    the field); any other event parses into a generic `ZoomEvent` with only its envelope read."""
    try:
        body = json_text.loads_storable(raw_body)
    except ValueError as exc:
        raise MalformedWebhook(f"Zoom webhook refused: {exc}") from None
    if not isinstance(body, dict):
        raise MalformedWebhook("Zoom webhook body must be a JSON object.")
    event = _req_str(body, "event", "event")
    ts_ms = body.get("event_ts")
    if ts_ms is None:
        raise MalformedWebhook("Zoom webhook body has no event_ts.", "event_ts")
    event_ts = _from_epoch_ms(ts_ms, "event_ts")
    payload = body.get("payload")
    if payload is not None and not isinstance(payload, dict):
        raise MalformedWebhook("Zoom webhook field payload must be an object.", "payload")
    payload = payload or {}

    if event == ENDPOINT_URL_VALIDATION:
        plain = _plain_token(payload, "payload.plainToken")
        return ZoomEvent(event=event, event_ts=event_ts, plain_token=plain, payload=payload,
                         dedupe_key=_key(event, plain, ts_ms))
    if event not in _MEETING_EVENTS:
        account = payload.get("account_id")
        return ZoomEvent(event=event, event_ts=event_ts, account_id=account if isinstance(account, str) else None,
                         payload=payload, dedupe_key=_key(event, ts_ms, _canonical(payload)))

    if "payload" not in body:
        raise MalformedWebhook(f"Zoom {event} body has no payload.", "payload")
    obj = _req_obj(payload, "object", "payload.object")
    meeting_uuid = _req_str(obj, "uuid", "payload.object.uuid")
    common: dict[str, Any] = {
        "account_id": _opt_str(payload, "account_id", "payload.account_id"),
        "meeting_id": _meeting_number(obj.get("id")),
        "meeting_uuid": meeting_uuid,
        "host_id": _opt_str(obj, "host_id", "payload.object.host_id"),
        "topic": _opt_str(obj, "topic", "payload.object.topic"),
        "start_time": _opt_time(obj, "start_time", "payload.object"),
    }
    if event == MEETING_STARTED:
        return ZoomEvent(event=event, event_ts=event_ts, payload=payload, dedupe_key=_key(event, meeting_uuid),
                         **common)
    if event == MEETING_ENDED:
        # Rivet marks end_time required; should it ever be absent, event_ts is when the meeting ended.
        end = _opt_time(obj, "end_time", "payload.object") or event_ts
        return ZoomEvent(event=event, event_ts=event_ts, end_time=end, payload=payload,
                         dedupe_key=_key(event, meeting_uuid), **common)

    person = _participant(event, _req_obj(obj, "participant", "payload.object.participant"), event_ts)
    key = _key(event, meeting_uuid, person.user_id, person.participant_uuid or "", person.at.isoformat())
    return ZoomEvent(event=event, event_ts=event_ts, participant=person, payload=payload, dedupe_key=key, **common)


def _participant(event: str, raw: Mapping[str, Any], event_ts: datetime) -> ParticipantEvent:
    path = "payload.object.participant"
    user_id = _id_str(raw.get("user_id"), f"{path}.user_id", required=True)
    assert user_id is not None
    join_time = leave_time = None
    if event == MEETING_PARTICIPANT_JOINED:
        join_time = at = _req_time(raw, "join_time", path)
    elif event == MEETING_PARTICIPANT_LEFT:
        leave_time = at = _req_time(raw, "leave_time", path)
    else:  # waiting room: `date_time` per Rivet; not attendance, so be lenient about it
        at = _opt_time(raw, "date_time", path) or event_ts
    account_user = _opt_str(raw, "participant_user_id", f"{path}.participant_user_id") or _id_str(
        raw.get("id"), f"{path}.id")
    return ParticipantEvent(
        user_id=user_id,
        user_name=_opt_str(raw, "user_name", f"{path}.user_name"),
        participant_uuid=_opt_str(raw, "participant_uuid", f"{path}.participant_uuid"),
        participant_user_id=account_user,
        email=_opt_str(raw, "email", f"{path}.email"),
        registrant_id=_opt_str(raw, "registrant_id", f"{path}.registrant_id"),
        customer_key=_opt_str(raw, "customer_key", f"{path}.customer_key"),
        phone_number=_opt_str(raw, "phone_number", f"{path}.phone_number"),
        at=at,
        join_time=join_time,
        leave_time=leave_time,
        leave_reason=_opt_str(raw, "leave_reason", f"{path}.leave_reason"),
    )


# -- field readers ------------------------------------------------------------------------------------------


def _req_obj(parent: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = parent.get(key)
    if value is None:
        raise MalformedWebhook(f"Zoom webhook body has no {path}.", path)
    if not isinstance(value, dict):
        raise MalformedWebhook(f"Zoom webhook field {path} must be an object.", path)
    return value


def _req_str(parent: Mapping[str, Any], key: str, path: str) -> str:
    value = _opt_str(parent, key, path)
    if value is None:
        raise MalformedWebhook(f"Zoom webhook body has no {path} (a non-empty string).", path)
    return value


def _opt_str(parent: Mapping[str, Any], key: str, path: str) -> str | None:
    value = parent.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedWebhook(f"Zoom webhook field {path} must be a string, not {type(value).__name__}.", path)
    return value


def _id_str(value: Any, path: str, *, required: bool = False) -> str | None:
    """An identifier Zoom may send as a string or a JSON integer (Python keeps big integers exact)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value:
        return value
    if value is None or value == "":
        if required:
            raise MalformedWebhook(f"Zoom webhook body has no {path}.", path)
        return None
    raise MalformedWebhook(f"Zoom webhook field {path} must be a string or an integer, not "
                           f"{type(value).__name__}.", path)


def _meeting_number(value: Any) -> str | None:
    number = _id_str(value, "payload.object.id")
    if number is not None and not (number.isascii() and number.isdigit()):
        raise MalformedWebhook(f"Zoom webhook field payload.object.id is {number!r}, not a meeting number.",
                               "payload.object.id")
    return number


def _from_epoch_ms(value: Any, path: str) -> datetime:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MalformedWebhook(f"Zoom webhook field {path} must be epoch milliseconds (a non-negative integer).",
                               path)
    try:
        return _EPOCH + timedelta(milliseconds=value)
    except OverflowError:
        raise MalformedWebhook(f"Zoom webhook field {path} ({value}) is out of range.", path) from None


def _opt_time(parent: Mapping[str, Any], key: str, parent_path: str) -> datetime | None:
    path = f"{parent_path}.{key}"
    text = _opt_str(parent, key, path)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedWebhook(f"Zoom webhook field {path} is {text[:40]!r}, not an ISO-8601 time.", path) from None
    if moment.tzinfo is None:
        raise MalformedWebhook(f"Zoom webhook field {path} is {text[:40]!r}, a time without a zone (Zoom sends "
                               "UTC with a Z).", path)
    return moment.astimezone(UTC)


def _req_time(parent: Mapping[str, Any], key: str, parent_path: str) -> datetime:
    moment = _opt_time(parent, key, parent_path)
    if moment is None:
        raise MalformedWebhook(f"Zoom webhook body has no {parent_path}.{key}.", f"{parent_path}.{key}")
    return moment


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _key(*parts: Any) -> str:
    return "zoom:" + hashlib.sha256(_canonical(list(parts)).encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# Segments


@dataclass(frozen=True)
class _Edge:
    """A join or a leave, reduced to what pairing needs."""

    at: datetime
    user_id: str
    key: str
    event: ZoomEvent
    person: ParticipantEvent


def segments_from_events(events: Iterable[ZoomEvent]) -> list[ParticipantSegment]:
    """Join/leave segments from participant events of any number of meeting instances.

    The result depends only on the set of distinct events (by `dedupe_key`): any order, any duplication, the
    same segments in the same order. Rules:
    - a person is the instance (`meeting_uuid`) plus `participant_uuid`, else the Zoom account user, else the
      per-join `user_id`; an event lacking `participant_uuid` borrows it from another event with its `user_id`.
      The display name is not part of the key: it is optional on leave events and people rename themselves.
    - a join pairs with the leave carrying its per-join `user_id`; what is left pairs first-in-first-out in time.
    - a reconnect is two segments; a join without a leave stays open (`left_at` None) unless `meeting.ended`
      for its instance arrived, which closes it at the end time (evidence `closed_by`: "meeting.ended").
    - a leave without a join becomes a zero-length segment at the leave time flagged `start_unknown`: the person
      was there, for how long is unknown, so no time is credited until the join (or the report) turns up.
    - waiting-room events are not attendance and are ignored.
    """
    distinct: dict[str, ZoomEvent] = {}
    for event in events:
        seen = distinct.get(event.dedupe_key)
        if seen is None or (event.event_ts, repr(event)) < (seen.event_ts, repr(seen)):
            distinct[event.dedupe_key] = event  # same key, different copies: a fixed choice, not arrival order

    ends: dict[str, datetime] = {}
    edges: list[_Edge] = []
    for event in distinct.values():
        if event.meeting_uuid is None:
            continue
        if event.event == MEETING_ENDED and event.end_time is not None:
            known = ends.get(event.meeting_uuid)
            ends[event.meeting_uuid] = event.end_time if known is None else min(known, event.end_time)
        elif event.event in (MEETING_PARTICIPANT_JOINED, MEETING_PARTICIPANT_LEFT) and event.participant:
            edges.append(_Edge(event.participant.at, event.participant.user_id, event.dedupe_key, event,
                               event.participant))

    # Identity borrowed across one join's events: user_id is unique per join within an instance.
    device: dict[tuple[str, str], str] = {}
    account: dict[tuple[str, str], str] = {}
    for edge in edges:
        uid = (_uuid(edge), edge.user_id)
        if edge.person.participant_uuid:
            device[uid] = min(device.get(uid, edge.person.participant_uuid), edge.person.participant_uuid)
        if edge.person.participant_user_id:
            account[uid] = min(account.get(uid, edge.person.participant_user_id), edge.person.participant_user_id)

    groups: dict[tuple[str, str], tuple[list[_Edge], list[_Edge]]] = {}
    for edge in edges:
        uid = (_uuid(edge), edge.user_id)
        if uid in device:
            person = f"participant_uuid:{device[uid]}"
        elif uid in account:
            person = f"zoom_user:{account[uid]}"
        else:
            person = f"user_id:{edge.user_id}"
        joins, leaves = groups.setdefault((_uuid(edge), person), ([], []))
        (joins if edge.event.event == MEETING_PARTICIPANT_JOINED else leaves).append(edge)

    segments: list[ParticipantSegment] = []
    for (meeting_uuid, person), (joins, leaves) in groups.items():
        pairs, open_joins, lone_leaves = _pair(joins, leaves)
        participant_key = f"zoom:{meeting_uuid}:{person}"
        for join, leave in pairs:
            segments.append(_segment(participant_key, join, leave, leave.at, {}))
        end = ends.get(meeting_uuid)
        for join in open_joins:
            if end is None:
                segments.append(_segment(participant_key, join, None, None, {}))
            else:
                segments.append(_segment(participant_key, join, None, max(end, join.at),
                                         {"closed_by": MEETING_ENDED}))
        for leave in lone_leaves:
            segments.append(_segment(participant_key, None, leave, leave.at, {"start_unknown": True}))
    far = datetime.max.replace(tzinfo=UTC)
    segments.sort(key=lambda s: (s.joined_at, s.participant_key, s.left_at or far, _canonical(s.evidence)))
    return segments


def _uuid(edge: _Edge) -> str:
    assert edge.event.meeting_uuid is not None
    return edge.event.meeting_uuid


def _order(edge: _Edge) -> tuple[datetime, str, str]:
    return edge.at, edge.user_id, edge.key


def _pair(joins: list[_Edge], leaves: list[_Edge]) -> tuple[list[tuple[_Edge, _Edge]], list[_Edge], list[_Edge]]:
    """Same per-join user_id first, then first-in-first-out over whatever is left."""
    pairs: list[tuple[_Edge, _Edge]] = []
    rest_joins: list[_Edge] = []
    rest_leaves: list[_Edge] = []
    for user_id in sorted({e.user_id for e in joins} | {e.user_id for e in leaves}):
        done, js, ls = _sweep([e for e in joins if e.user_id == user_id], [e for e in leaves if e.user_id == user_id])
        pairs += done
        rest_joins += js
        rest_leaves += ls
    done, open_joins, lone_leaves = _sweep(rest_joins, rest_leaves)
    return pairs + done, open_joins, lone_leaves


def _sweep(joins: list[_Edge], leaves: list[_Edge]) -> tuple[list[tuple[_Edge, _Edge]], list[_Edge], list[_Edge]]:
    timeline = sorted([(e.at, 0, _order(e), e) for e in joins] + [(e.at, 1, _order(e), e) for e in leaves],
                      key=lambda item: item[:3])  # a join sorts before a leave at the same instant
    waiting: deque[_Edge] = deque()
    pairs: list[tuple[_Edge, _Edge]] = []
    lone: list[_Edge] = []
    for _, kind, _, edge in timeline:
        if kind == 0:
            waiting.append(edge)
        elif waiting:
            pairs.append((waiting.popleft(), edge))
        else:
            lone.append(edge)
    return pairs, list(waiting), lone


def _segment(participant_key: str, join: _Edge | None, leave: _Edge | None, left_at: datetime | None,
             flags: dict[str, Any]) -> ParticipantSegment:
    first = join or leave
    assert first is not None
    sources = [e.person for e in (join, leave) if e is not None]

    def pick(name: str) -> Any:
        return next((getattr(p, name) for p in sources if getattr(p, name) is not None), None)

    evidence: dict[str, Any] = {
        "source": "zoom_webhook",
        "meeting_id": first.event.meeting_id,
        "meeting_uuid": first.event.meeting_uuid,
        "user_id": first.user_id,
        "participant_uuid": pick("participant_uuid"),
        "participant_user_id": pick("participant_user_id"),
        "registrant_id": pick("registrant_id"),
        PERSONAL_ID: pick("registrant_id"),
        "customer_key": pick("customer_key"),
        "email": pick("email"),
        "display_name": pick("user_name"),
        "phone_number": pick("phone_number"),
        "leave_reason": leave.person.leave_reason if leave is not None else None,
    }
    if join is not None and leave is not None and leave.user_id != join.user_id:
        evidence["leave_user_id"] = leave.user_id
    evidence = {key: value for key, value in evidence.items() if value is not None}
    if evidence.get("email") and evidence.get("participant_user_id"):
        # Signed in to Zoom (guests have no participant_user_id): the email is the account's, not typed.
        evidence[EMAIL_VERIFIED_BY] = "Zoom"
    evidence.update(flags)
    return ParticipantSegment(
        participant_key=participant_key,
        joined_at=first.at,
        left_at=left_at,
        email=evidence.get("email"),
        display_name=evidence.get("display_name"),
        evidence=evidence,
        instance=first.event.meeting_uuid or "",
    )
