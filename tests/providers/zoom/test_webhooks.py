"""Zoom webhooks: signature, URL validation, event parsing and join/leave segments.

Payloads come from the fixtures (shapes the simulator produces and the fixture test pins) and from the simulator
itself over real HTTP; signatures from the simulator's own `sign_webhook` or its recorded deliveries.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.providers.fixtures import fixture_bytes, fixture_json, fixture_names
from tests.providers.zoom.conftest import T0, Receiver, create_meeting
from viltbridge.core.errors import Forbidden, InvalidInput
from viltbridge.core.provider import ParticipantSegment
from viltbridge.providers.zoom.simulator import ZoomSimulator
from viltbridge.providers.zoom.simulator.state import sign_webhook
from viltbridge.providers.zoom.webhooks import (
    MalformedWebhook,
    WebhookRejected,
    ZoomEvent,
    parse_event,
    segments_from_events,
    url_validation_response,
    verify_signature,
)

pytestmark = pytest.mark.pure

SIGNED = fixture_json("zoom", "signed_delivery_participant_joined.json")
SECRET = SIGNED["secret_token"]
SIGNED_BODY: bytes = SIGNED["body"].encode()
SIGNED_HEADERS: dict[str, str] = SIGNED["headers"]
SIGNED_AT = datetime.fromtimestamp(int(SIGNED_HEADERS["x-zm-request-timestamp"]), UTC)
UUID = "jpLK4NFQV7FZmH+UzHQR1w=="


def fixture(name: str) -> dict[str, Any]:
    return dict(fixture_json("zoom", f"{name}.json"))


def raw(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def signed(body: bytes, at: datetime = T0, secret: str = SECRET) -> dict[str, str]:
    timestamp = str(int(at.timestamp()))
    return {"x-zm-request-timestamp": timestamp, "x-zm-signature": sign_webhook(secret, timestamp, body),
            "content-type": "application/json"}


# -- verify_signature ------------------------------------------------------------------------------------------


def test_fixture_delivery_verifies() -> None:
    verify_signature(SIGNED_BODY, SIGNED_HEADERS, SECRET, SIGNED_AT)
    assert parse_event(SIGNED_BODY).participant is not None


@pytest.mark.parametrize("name", fixture_names("zoom", "webhook_*.json"), ids=lambda name: name.removesuffix(".json"))
def test_bodies_signed_by_the_simulator_verify(name: str) -> None:
    body = fixture_bytes("zoom", name)
    verify_signature(body, signed(body), SECRET, T0)
    with pytest.raises(WebhookRejected) as refused:
        verify_signature(body, signed(body, secret="another-apps-secret"), SECRET, T0)
    assert refused.value.reason == "mismatch"


def test_the_raw_body_is_signed_not_its_json() -> None:
    reserialized = json.dumps(json.loads(SIGNED_BODY)).encode()  # same JSON, other bytes (spaces)
    with pytest.raises(WebhookRejected) as refused:
        verify_signature(reserialized, SIGNED_HEADERS, SECRET, SIGNED_AT)
    assert refused.value.reason == "mismatch" and "secret token" in refused.value.message


def _mixed_case(name: str, flips: list[bool]) -> str:
    return "".join(c.upper() if flip else c for c, flip in zip(name, flips + [False] * len(name), strict=False))


@given(st.lists(st.booleans(), min_size=22, max_size=22), st.lists(st.booleans(), min_size=14, max_size=14))
def test_header_names_are_case_insensitive(ts_flips: list[bool], sig_flips: list[bool]) -> None:
    headers = {_mixed_case("x-zm-request-timestamp", ts_flips): SIGNED_HEADERS["x-zm-request-timestamp"],
               _mixed_case("x-zm-signature", sig_flips): SIGNED_HEADERS["x-zm-signature"]}
    verify_signature(SIGNED_BODY, headers, SECRET, SIGNED_AT)


def _flip(data: bytes, index: int, delta: int) -> bytes:
    changed = bytearray(data)
    changed[index % len(data)] = (changed[index % len(data)] + delta) % 256
    return bytes(changed)


DELTA = st.integers(min_value=1, max_value=255)  # never 0: the byte really changes


@settings(max_examples=300)
@given(st.integers(min_value=0), DELTA)
def test_any_single_byte_change_to_the_body_fails(index: int, delta: int) -> None:
    with pytest.raises(WebhookRejected):
        verify_signature(_flip(SIGNED_BODY, index, delta), SIGNED_HEADERS, SECRET, SIGNED_AT)


@pytest.mark.parametrize("header", ["x-zm-request-timestamp", "x-zm-signature"])
@settings(max_examples=150)
@given(index=st.integers(min_value=0), delta=DELTA)
def test_any_single_byte_change_to_timestamp_or_signature_fails(header: str, index: int, delta: int) -> None:
    value = _flip(SIGNED_HEADERS[header].encode("latin-1"), index, delta).decode("latin-1")
    with pytest.raises(WebhookRejected):
        verify_signature(SIGNED_BODY, {**SIGNED_HEADERS, header: value}, SECRET, SIGNED_AT)


TOLERANCE = timedelta(minutes=5)
TICK = timedelta(microseconds=1)


@pytest.mark.parametrize(("receiver_clock", "reason"), [
    (SIGNED_AT, None),
    (SIGNED_AT + TOLERANCE, None),  # exactly 5 minutes old: still accepted
    (SIGNED_AT - TOLERANCE, None),  # exactly 5 minutes ahead of our clock: still accepted
    (SIGNED_AT + TOLERANCE + TICK, "stale"),
    (SIGNED_AT - TOLERANCE - TICK, "future"),
    (SIGNED_AT + timedelta(days=3), "stale"),  # a replay of an old capture
])
def test_timestamps_at_the_tolerance_edge(receiver_clock: datetime, reason: str | None) -> None:
    if reason is None:
        verify_signature(SIGNED_BODY, SIGNED_HEADERS, SECRET, receiver_clock)
        return
    with pytest.raises(WebhookRejected) as refused:
        verify_signature(SIGNED_BODY, SIGNED_HEADERS, SECRET, receiver_clock)
    assert refused.value.reason == reason and "clock" in refused.value.message


def test_tolerance_is_a_parameter() -> None:
    later = SIGNED_AT + timedelta(seconds=30)
    verify_signature(SIGNED_BODY, SIGNED_HEADERS, SECRET, later, tolerance=timedelta(seconds=30))
    with pytest.raises(WebhookRejected, match="signed 31 s ago"):
        verify_signature(SIGNED_BODY, SIGNED_HEADERS, SECRET, later + timedelta(seconds=1),
                         tolerance=timedelta(seconds=30))
    verify_signature(SIGNED_BODY, SIGNED_HEADERS, SECRET, SIGNED_AT.astimezone(), tolerance=timedelta(0))


SIG = SIGNED_HEADERS["x-zm-signature"]


@pytest.mark.parametrize(("headers", "reason", "words"), [
    ({}, "missing_header", "x-zm-request-timestamp and x-zm-signature headers are missing"),
    ({"x-zm-signature": SIG}, "missing_header", "x-zm-request-timestamp header is missing"),
    ({"x-zm-request-timestamp": "1772442000"}, "missing_header", "x-zm-signature header is missing"),
    ({"x-zm-request-timestamp": "1772442000", "x-zm-signature": ""}, "missing_header", "missing"),
    ({"x-zm-request-timestamp": "1772442000", "X-ZM-Request-Timestamp": "1772442001", "x-zm-signature": SIG},
     "duplicate_header", "more than once"),
    ({"x-zm-request-timestamp": "2026-03-02T09:00:00Z", "x-zm-signature": SIG}, "bad_timestamp", "Unix time"),
    ({"x-zm-request-timestamp": "1772442000000000", "x-zm-signature": SIG}, "bad_timestamp", "Unix time"),
    ({"x-zm-request-timestamp": "1772442000", "x-zm-signature": "v1=" + SIG[3:]}, "bad_scheme", "v0="),
    ({"x-zm-request-timestamp": "1772442000", "x-zm-signature": SIG[3:]}, "bad_scheme", "v0="),
    ({"x-zm-request-timestamp": "1772442000", "x-zm-signature": SIG.upper().replace("V0=", "v0=")}, "bad_hex",
     "64 lowercase hex"),
    ({"x-zm-request-timestamp": "1772442000", "x-zm-signature": SIG[:-2]}, "bad_hex", "64 lowercase hex"),
    ({"x-zm-request-timestamp": "1772442000", "x-zm-signature": SIG[:-1] + "g"}, "bad_hex", "hex"),
    ({"x-zm-request-timestamp": "1772442000", "x-zm-signature": "v0=" + "0" * 64}, "mismatch", "does not match"),
])
def test_refusals_say_what_is_wrong(headers: dict[str, str], reason: str, words: str) -> None:
    with pytest.raises(WebhookRejected) as refused:
        verify_signature(SIGNED_BODY, headers, SECRET, SIGNED_AT)
    assert isinstance(refused.value, Forbidden) and refused.value.status == 403
    assert refused.value.reason == reason and words in refused.value.message


def test_no_secret_and_naive_clock() -> None:
    with pytest.raises(WebhookRejected) as refused:
        verify_signature(SIGNED_BODY, SIGNED_HEADERS, "", SIGNED_AT)
    assert refused.value.reason == "no_secret" and "secret token" in refused.value.message
    with pytest.raises(ValueError, match="aware"):
        verify_signature(SIGNED_BODY, SIGNED_HEADERS, SECRET, SIGNED_AT.replace(tzinfo=None))


# -- url_validation_response -----------------------------------------------------------------------------------


def test_url_validation_answer() -> None:
    body = fixture("webhook_endpoint_url_validation")
    expected = {"plainToken": "qgg8vlvZRS6UYooatFL8Aw",
                "encryptedToken": hmac.new(SECRET.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()}
    event = parse_event(raw(body))
    assert event.plain_token == "qgg8vlvZRS6UYooatFL8Aw"
    assert url_validation_response(body, SECRET) == expected
    assert url_validation_response(body["payload"], SECRET) == expected
    assert url_validation_response(event, SECRET) == expected


@pytest.mark.parametrize(("payload", "field"), [
    ({"event": "endpoint.url_validation", "payload": {}}, "payload.plainToken"),
    ({"event": "endpoint.url_validation", "payload": {"plainToken": 7}}, "payload.plainToken"),
    ({"event": "meeting.started", "payload": {"plainToken": "x"}}, "event"),
    ({}, "plainToken"),
])
def test_url_validation_refuses_other_bodies(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(MalformedWebhook) as refused:
        url_validation_response(payload, SECRET)
    assert refused.value.field == field and field in refused.value.message
    with pytest.raises(MalformedWebhook):
        url_validation_response(parse_event(raw(fixture("webhook_meeting_started"))), SECRET)
    with pytest.raises(WebhookRejected):
        url_validation_response(fixture("webhook_endpoint_url_validation"), "")


def test_url_validation_against_the_simulator(sim: ZoomSimulator, receiver: Receiver) -> None:
    """The simulator posts a signed challenge and says which answer Zoom would accept."""
    result = sim.state.validate_webhook_endpoint(plain_token="Zx9-challenge")
    headers, body = receiver.requests[-1]
    verify_signature(body, headers, sim.config.webhook_secret_token, sim.state.clock.now())
    answer = url_validation_response(parse_event(body), sim.config.webhook_secret_token)
    assert answer == {"plainToken": "Zx9-challenge", "encryptedToken": result["expected_encrypted_token"]}


# -- parse_event -----------------------------------------------------------------------------------------------


def test_meeting_started_and_ended() -> None:
    started = parse_event(raw(fixture("webhook_meeting_started")))
    assert (started.event, started.event_ts) == ("meeting.started", datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    assert started.account_id == "simAccount0000000000A"
    assert (started.meeting_id, started.meeting_uuid) == ("92057065647", UUID)
    assert (started.host_id, started.topic) == ("UvImZaYMEtKJGF2VDuiBNg", "Algebra 101")
    assert started.start_time == datetime(2026, 3, 2, 9, 0, tzinfo=UTC) and started.participant is None
    ended = parse_event(raw(fixture("webhook_meeting_ended")))
    assert ended.end_time == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert ended.dedupe_key != started.dedupe_key


def test_participant_joined_as_registrant_without_signing_in() -> None:
    event = parse_event(raw(fixture("webhook_participant_joined_registrant_not_signed_in")))
    person = event.participant
    assert event.event == "meeting.participant_joined" and person is not None
    assert person.user_id == "16779264" and person.user_name == "Ann Learner"
    assert person.registrant_id == "_Fuu4mH1OyYVLSY7qDsDfA" and person.participant_uuid == "XZ0GEt81nWAmokD0"
    assert person.email is None and person.participant_user_id is None  # Zoom's "" means unknown
    assert person.join_time == person.at == datetime(2026, 3, 2, 9, 1, tzinfo=UTC)
    assert person.at.tzinfo is UTC and person.leave_time is None


def test_participant_joined_signed_in_and_as_guest() -> None:
    carl = parse_event(raw(fixture("webhook_participant_joined_signed_in"))).participant
    assert carl is not None and carl.email == "co@example.edu"
    assert carl.participant_user_id == "b2sRPReNbA_TkB_yOaGglQ" and carl.registrant_id is None
    guest = parse_event(raw(fixture("webhook_participant_joined_guest_rejoin"))).participant
    assert guest is not None and guest.user_name == "Ann's iPhone"
    assert (guest.email, guest.registrant_id, guest.participant_user_id) == (None, None, None)


def test_participant_left() -> None:
    person = parse_event(raw(fixture("webhook_participant_left"))).participant
    assert person is not None and person.leave_time == person.at == datetime(2026, 3, 2, 9, 20, tzinfo=UTC)
    assert person.join_time is None and person.leave_reason == "left the meeting. Reason : connection lost"


def test_optional_participant_fields_and_account_id_fallback() -> None:
    body = fixture("webhook_participant_joined_registrant_not_signed_in")
    part = body["payload"]["object"]["participant"]
    part.update(customer_key="lms-42", phone_number="+15550100", participant_user_id="", id="xAcctUser1")
    person = parse_event(raw(body)).participant
    assert person is not None and (person.customer_key, person.phone_number) == ("lms-42", "+15550100")
    assert person.participant_user_id == "xAcctUser1"  # the deprecated `id` when participant_user_id is empty


def test_meeting_numbers_are_int64_safe_strings() -> None:
    body = fixture("webhook_meeting_started")
    body["payload"]["object"]["id"] = 9007199254740993  # 2**53 + 1: a float would round it
    assert parse_event(raw(body)).meeting_id == "9007199254740993"
    body["payload"]["object"]["id"] = "9223372036854775807"
    assert parse_event(raw(body)).meeting_id == "9223372036854775807"


def test_waiting_room_event() -> None:
    body = fixture("webhook_participant_joined_signed_in")
    body["event"] = "meeting.participant_joined_waiting_room"
    part = body["payload"]["object"]["participant"]
    part["date_time"] = part.pop("join_time")
    event = parse_event(raw(body))
    assert event.participant is not None and event.participant.at == datetime(2026, 3, 2, 9, 5, tzinfo=UTC)
    assert event.participant.join_time is None
    assert segments_from_events([event]) == []  # waiting is not attending


def test_unknown_events_parse_generically() -> None:
    body = {"event": "recording.completed", "event_ts": 1772445900000, "download_token": "abc",
            "payload": {"account_id": "simAccount0000000000A",
                        "object": {"uuid": UUID, "id": 92057065647, "recording_files": []}}}
    event = parse_event(raw(body))
    assert event.event == "recording.completed" and event.account_id == "simAccount0000000000A"
    assert event.meeting_uuid is None and event.participant is None
    assert event.payload["object"]["recording_files"] == []
    bare = parse_event(b'{"event":"app_deauthorized","event_ts":1772445900000}')
    assert bare.event == "app_deauthorized" and bare.payload == {}


def _drop(path: str) -> Any:
    def change(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = body
        for key in parents:
            target = target[key]
        del target[last]
    return change


def _set(path: str, value: Any) -> Any:
    def change(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = body
        for key in parents:
            target = target[key]
        target[last] = value
    return change


PARTICIPANT = "payload.object.participant"


@pytest.mark.parametrize(("change", "field"), [
    (_drop("event"), "event"),
    (_set("event", 3), "event"),
    (_drop("event_ts"), "event_ts"),
    (_set("event_ts", "1772442060000"), "event_ts"),
    (_set("event_ts", 1.77e12), "event_ts"),
    (_drop("payload"), "payload"),
    (_set("payload", []), "payload"),
    (_drop("payload.object"), "payload.object"),
    (_set("payload.object", "x"), "payload.object"),
    (_drop("payload.object.uuid"), "payload.object.uuid"),
    (_set("payload.object.id", "92057-065647"), "payload.object.id"),
    (_set("payload.object.id", 9.2e10), "payload.object.id"),
    (_set("payload.object.start_time", "yesterday"), "payload.object.start_time"),
    (_drop(PARTICIPANT), PARTICIPANT),
    (_drop(f"{PARTICIPANT}.user_id"), f"{PARTICIPANT}.user_id"),
    (_drop(f"{PARTICIPANT}.join_time"), f"{PARTICIPANT}.join_time"),
    (_set(f"{PARTICIPANT}.join_time", "2026-03-02 09:01"), f"{PARTICIPANT}.join_time"),
    (_set(f"{PARTICIPANT}.join_time", "not a time"), f"{PARTICIPANT}.join_time"),
    (_set(f"{PARTICIPANT}.email", 12), f"{PARTICIPANT}.email"),
])
def test_malformed_bodies_name_the_field(change: Any, field: str) -> None:
    body = fixture("webhook_participant_joined_registrant_not_signed_in")
    change(body)
    with pytest.raises(MalformedWebhook) as refused:
        parse_event(raw(body))
    assert isinstance(refused.value, InvalidInput) and refused.value.field == field
    assert field in refused.value.message


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b'"event"', b"\xff\xfe", b"null"])
def test_bodies_that_are_not_json_objects(body: bytes) -> None:
    with pytest.raises(MalformedWebhook, match="JSON"):
        parse_event(body)


def test_a_left_event_needs_its_leave_time() -> None:
    body = fixture("webhook_participant_left")
    del body["payload"]["object"]["participant"]["leave_time"]
    with pytest.raises(MalformedWebhook, match=r"payload\.object\.participant\.leave_time"):
        parse_event(raw(body))


def test_dedupe_key_same_logical_event_same_key() -> None:
    body = fixture("webhook_participant_joined_registrant_not_signed_in")
    first = parse_event(raw(body))
    pretty = json.dumps(body, indent=2, sort_keys=True).encode()  # other bytes, same event
    assert parse_event(pretty).dedupe_key == first.dedupe_key
    retried = copy.deepcopy(body)
    retried["event_ts"] += 300_000  # a redelivery stamped later
    assert parse_event(raw(retried)).dedupe_key == first.dedupe_key
    reconnect = copy.deepcopy(body)
    reconnect["payload"]["object"]["participant"].update(user_id="16781312", join_time="2026-03-02T09:25:00Z")
    assert parse_event(raw(reconnect)).dedupe_key != first.dedupe_key
    other_instance = copy.deepcopy(body)
    other_instance["payload"]["object"]["uuid"] = "bm90LXRoZS1zYW1lLWluc3Q="
    assert parse_event(raw(other_instance)).dedupe_key != first.dedupe_key
    left = parse_event(raw(fixture("webhook_participant_left")))
    assert left.dedupe_key != first.dedupe_key
    end = fixture("webhook_meeting_ended")
    assert parse_event(raw(end)).dedupe_key == parse_event(raw({**end, "event_ts": 1})).dedupe_key


# -- segments_from_events --------------------------------------------------------------------------------------


def joined(user_id: str, at: str, *, uuid: str | None = "dev-ann", name: str = "Ann Learner",
           meeting: str = UUID, **extra: Any) -> ZoomEvent:
    body = fixture("webhook_participant_joined_registrant_not_signed_in")
    body["payload"]["object"]["uuid"] = meeting
    part = body["payload"]["object"]["participant"]
    part.update(user_id=user_id, join_time=at, user_name=name, participant_uuid=uuid or "", **extra)
    return parse_event(raw(body))


def left(user_id: str, at: str, *, uuid: str | None = "dev-ann", name: str = "Ann Learner",
         meeting: str = UUID, **extra: Any) -> ZoomEvent:
    body = fixture("webhook_participant_left")
    body["payload"]["object"]["uuid"] = meeting
    part = body["payload"]["object"]["participant"]
    part.update(user_id=user_id, leave_time=at, user_name=name, participant_uuid=uuid or "", **extra)
    return parse_event(raw(body))


def ended(at: str, meeting: str = UUID) -> ZoomEvent:
    body = fixture("webhook_meeting_ended")
    body["payload"]["object"].update(uuid=meeting, end_time=at)
    return parse_event(raw(body))


def spans(segments: list[ParticipantSegment]) -> list[tuple[str, str, str | None]]:
    return [(s.participant_key.rsplit(":", 1)[-1], s.joined_at.strftime("%H:%M"),
             s.left_at.strftime("%H:%M") if s.left_at else None) for s in segments]


def test_fixture_events_make_segments_with_identity_evidence() -> None:
    events = [parse_event(fixture_bytes("zoom", f"{name}.json")) for name in (
        "webhook_meeting_started", "webhook_participant_joined_registrant_not_signed_in",
        "webhook_participant_joined_signed_in", "webhook_participant_left",
        "webhook_participant_joined_guest_rejoin", "webhook_meeting_ended")]
    segments = segments_from_events(events)
    assert spans(segments) == [("XZ0GEt81nWAmokD0", "09:01", "09:20"), ("WJpdeR8d2Xz--nd6", "09:05", "10:00"),
                               ("e08VJBq_V71DetSx", "09:25", "10:00")]
    ann, carl, phone = segments
    assert ann.participant_key == f"zoom:{UUID}:participant_uuid:XZ0GEt81nWAmokD0"
    assert ann.email is None and ann.display_name == "Ann Learner"
    assert ann.evidence == {
        "source": "zoom_webhook", "meeting_id": "92057065647", "meeting_uuid": UUID, "user_id": "16779264",
        "participant_uuid": "XZ0GEt81nWAmokD0", "registrant_id": "_Fuu4mH1OyYVLSY7qDsDfA",
        "personal_id": "_Fuu4mH1OyYVLSY7qDsDfA", "display_name": "Ann Learner",
        "leave_reason": "left the meeting. Reason : connection lost"}
    assert carl.email == "co@example.edu" and carl.evidence["participant_user_id"] == "b2sRPReNbA_TkB_yOaGglQ"
    assert carl.evidence["closed_by"] == "meeting.ended" and phone.evidence["closed_by"] == "meeting.ended"
    assert "personal_id" not in phone.evidence  # the guest rejoin carries no link to Ann: the ledger decides


def test_reconnect_is_two_segments_of_one_participant() -> None:
    events = [joined("1001", "2026-03-02T09:01:00Z"), left("1001", "2026-03-02T09:20:00Z"),
              joined("1002", "2026-03-02T09:22:00Z"), left("1002", "2026-03-02T09:50:00Z")]
    segments = segments_from_events(events)
    assert spans(segments) == [("dev-ann", "09:01", "09:20"), ("dev-ann", "09:22", "09:50")]
    assert [s.evidence["user_id"] for s in segments] == ["1001", "1002"]


def test_failover_overlap_pairs_by_per_join_id() -> None:
    """Zoom can report the new connection's join before the old one's leave."""
    events = [joined("1001", "2026-03-02T09:01:00Z"), joined("1002", "2026-03-02T09:30:00Z"),
              left("1001", "2026-03-02T09:30:05Z"), left("1002", "2026-03-02T09:59:00Z")]
    assert spans(segments_from_events(events)) == [("dev-ann", "09:01", "09:30"), ("dev-ann", "09:30", "09:59")]
    assert [s.evidence["user_id"] for s in segments_from_events(events)] == ["1001", "1002"]


def test_join_without_leave_stays_open_until_the_meeting_ends() -> None:
    events = [joined("1001", "2026-03-02T09:01:00Z")]
    [segment] = segments_from_events(events)
    assert segment.left_at is None and "closed_by" not in segment.evidence
    [closed] = segments_from_events([*events, ended("2026-03-02T10:00:00Z")])
    assert closed.left_at == datetime(2026, 3, 2, 10, 0, tzinfo=UTC) and closed.evidence["closed_by"] == "meeting.ended"
    other = ended("2026-03-02T10:00:00Z", meeting="b3RoZXItaW5zdGFuY2U=")
    assert segments_from_events([*events, other])[0].left_at is None  # another instance's end changes nothing


def test_leave_without_join_is_a_flagged_zero_length_segment() -> None:
    [segment] = segments_from_events([left("1001", "2026-03-02T09:20:00Z")])
    assert segment.joined_at == segment.left_at == datetime(2026, 3, 2, 9, 20, tzinfo=UTC)
    assert segment.evidence["start_unknown"] is True
    assert segment.evidence["registrant_id"] == "_Fuu4mH1OyYVLSY7qDsDfA"
    late_join = joined("1001", "2026-03-02T09:01:00Z")  # the missing join turns up: an ordinary segment
    [complete] = segments_from_events([left("1001", "2026-03-02T09:20:00Z"), late_join])
    assert spans([complete]) == [("dev-ann", "09:01", "09:20")] and "start_unknown" not in complete.evidence


def test_events_without_participant_uuid_pair_by_identity() -> None:
    # No participant_uuid on the leave: it borrows the device id from its join (same per-join user_id).
    borrowed = segments_from_events([joined("1001", "2026-03-02T09:01:00Z"),
                                     left("1001", "2026-03-02T09:20:00Z", uuid=None)])
    assert spans(borrowed) == [("dev-ann", "09:01", "09:20")]
    # No participant_uuid at all: per-join user_id (the name is not part of the key: renames happen).
    guests = segments_from_events([joined("2001", "2026-03-02T09:02:00Z", uuid=None, name="Bo"),
                                   left("2001", "2026-03-02T09:10:00Z", uuid=None, name="Bo (phone)"),
                                   joined("2002", "2026-03-02T09:03:00Z", uuid=None, name="Bo")])
    assert spans(guests) == [("2001", "09:02", "09:10"), ("2002", "09:03", None)]
    # A signed-in user without device ids: keyed on the account user, reconnects pair in time order.
    account = {"participant_user_id": "acct-1", "id": "acct-1"}
    signed_in = segments_from_events([
        joined("3001", "2026-03-02T09:00:00Z", uuid=None, **account),
        left("3001", "2026-03-02T09:10:00Z", uuid=None, **account),
        joined("3002", "2026-03-02T09:12:00Z", uuid=None, **account)])
    assert spans(signed_in) == [("acct-1", "09:00", "09:10"), ("acct-1", "09:12", None)]


def test_instances_are_kept_apart() -> None:
    first, second = UUID, "c2Vjb25kLWluc3RhbmNlPT0="
    events = [joined("16778240", "2026-03-02T09:00:00Z", meeting=first),
              left("16778240", "2026-03-02T09:10:00Z", meeting=first),
              joined("16778240", "2026-03-02T09:15:00Z", meeting=second)]  # per-join ids restart per instance
    segments = segments_from_events(events)
    assert [(s.evidence["meeting_uuid"], s.left_at is None) for s in segments] == [(first, False), (second, True)]


# A realistic class: people with one to three visits, some leaves lost, some joins lost, maybe an end.
VISIT = st.tuples(st.integers(0, 170), st.integers(0, 40), st.booleans(), st.booleans())
PERSON = st.tuples(st.sampled_from(["device", "account", "guest"]), st.lists(VISIT, min_size=1, max_size=3))
CLASS = st.tuples(st.lists(PERSON, min_size=1, max_size=5), st.one_of(st.none(), st.integers(60, 240)))


def _class_events(people: list[tuple[str, list[tuple[int, int, bool, bool]]]], end: int | None) -> list[ZoomEvent]:
    def at(minutes: int) -> str:
        return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")

    events: list[ZoomEvent] = []
    next_id = 16778240
    for number, (kind, visits) in enumerate(people):
        extra: dict[str, Any] = {"uuid": f"dev{number}" if kind == "device" else None, "name": f"P{number}"}
        if kind == "account":
            extra.update(participant_user_id=f"acct{number}", id=f"acct{number}")
        clock = 0
        for gap, stay, has_join, has_leave in visits:
            clock += gap
            user_id = str(next_id)
            next_id += 1024
            if has_join or not has_leave:
                events.append(joined(user_id, at(clock), **extra))
            if has_leave:
                events.append(left(user_id, at(clock + stay), **extra))
            clock += stay
    if end is not None:
        events.append(ended(at(end)))
    return events


@settings(max_examples=60, deadline=None)
@given(CLASS, st.randoms(use_true_random=False), st.lists(st.integers(0, 10_000), max_size=12))
def test_segments_ignore_order_and_duplicates(scenario: Any, rng: random.Random, extra: list[int]) -> None:
    events = _class_events(*scenario)
    expected = segments_from_events(events)
    messy = events + [events[i % len(events)] for i in extra]  # duplicated deliveries
    rng.shuffle(messy)  # out of order
    assert segments_from_events(messy) == expected
    assert segments_from_events(events + events) == expected  # idempotent under redelivery of everything
    assert all(s.left_at is None or s.left_at >= s.joined_at for s in expected)
    joins = sum(1 for e in events if e.event == "meeting.participant_joined")
    lone_leaves = sum(1 for s in expected if s.evidence.get("start_unknown"))
    assert len(expected) == joins + lone_leaves  # every join is one segment; nothing invented


# -- the simulator end to end ----------------------------------------------------------------------------------


def _scenario(sim: ZoomSimulator, api: httpx2.Client) -> dict[str, Any]:
    """Host 09:00-10:00; Ann (registrant) 09:01, drops at 09:20 and is back on the same device 09:21, then again
    at 09:25 on her phone as a guest; Carl (signed in) 09:05-09:40; Dee (guest) 09:10-09:12; the host ends 10:00."""
    sim.state.seed_user("co@example.edu", first_name="Carl", last_name="Co")
    meeting = create_meeting(api, settings={"approval_type": 0})
    mid = meeting["id"]
    reg = api.post(f"/meetings/{mid}/registrants", json={"email": "ann@learner.org", "first_name": "Ann",
                                                         "last_name": "Learner"}).json()
    state = sim.state
    state.start_meeting(mid, at=T0)
    ann = state.join(mid, "Ann Learner", registrant=reg["registrant_id"], at=T0 + timedelta(minutes=1))
    state.join(mid, "Carl Co", user="co@example.edu", at=T0 + timedelta(minutes=5))
    dee = state.join(mid, "Dee", at=T0 + timedelta(minutes=10))
    state.leave(mid, dee["participant_id"], at=T0 + timedelta(minutes=12))
    back = state.reconnect(mid, ann["participant_id"], at=T0 + timedelta(minutes=20), gap_seconds=60)
    state.reconnect(mid, back["participant_id"], at=T0 + timedelta(minutes=25), as_guest=True, name="Ann's iPhone")
    state.leave(mid, "Carl Co", at=T0 + timedelta(minutes=40))
    state.end_meeting(mid, at=T0 + timedelta(minutes=60))
    state.mark_report_processed(mid)
    return {"id": mid, "registrant_id": reg["registrant_id"]}


def _received(sim: ZoomSimulator, receiver: Receiver) -> list[ZoomEvent]:
    now = sim.state.clock.now()
    for headers, body in receiver.requests:
        verify_signature(body, headers, sim.config.webhook_secret_token, now)
    return [parse_event(body) for _, body in receiver.requests]


def test_webhook_segments_match_the_simulators_report(sim: ZoomSimulator, api: httpx2.Client,
                                                       receiver: Receiver) -> None:
    meeting = _scenario(sim, api)
    events = _received(sim, receiver)
    segments = segments_from_events(events)
    report = api.get(f"/report/meetings/{meeting['id']}/participants",
                     params={"include_fields": "registrant_id", "page_size": 300}).json()["participants"]
    assert sorted((s.evidence["user_id"], s.joined_at, s.left_at) for s in segments) == sorted(
        (r["user_id"], datetime.fromisoformat(r["join_time"]), datetime.fromisoformat(r["leave_time"]))
        for r in report)
    ann = [s for s in segments if s.evidence.get("registrant_id") == meeting["registrant_id"]]
    assert len(ann) == 2 and len({s.participant_key for s in ann}) == 1  # a reconnect: one device, two segments
    assert all(s.evidence["meeting_id"] == str(meeting["id"]) for s in segments)
    assert {s.display_name for s in segments} == {"Tess Teacher", "Ann Learner", "Carl Co", "Dee", "Ann's iPhone"}


def test_shuffled_duplicated_deliveries_give_the_same_segments(sim: ZoomSimulator, api: httpx2.Client,
                                                                receiver: Receiver) -> None:
    sim.state.hold_webhooks()
    _scenario(sim, api)
    sim.state.release_webhooks(order="shuffled", duplicate=2, seed=7)
    messy = _received(sim, receiver)
    first_copies = {d["seq"]: d["body"] for d in reversed(sim.state.webhooks_sent())}
    in_order = [parse_event(first_copies[seq].encode()) for seq in sorted(first_copies)]
    assert len(messy) == 3 * len(in_order)
    assert [e.event for e in messy] != [e.event for e in in_order for _ in range(3)]  # really shuffled
    sim.state.redeliver_webhook(min(first_copies))  # same body, fresh timestamp and signature
    again = _received(sim, receiver)[-1]
    assert again.dedupe_key == in_order[0].dedupe_key
    assert len({e.dedupe_key for e in messy}) == len(in_order)
    assert segments_from_events([*messy, again]) == segments_from_events(in_order)
    assert len(segments_from_events(in_order)) == 6  # host, Ann twice, Carl, Dee, the phone
