"""JaaS webhooks, Zulip-style: every fixture payload (shaped like JaaS's documented deliveries) goes through the
adapter's `read_webhook` with a real X-Jaas-Signature and is checked against what it must yield; then the signature
rules (property-tested), and segments rebuilt from stored events whatever their order."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.providers.fixtures import fixture_bytes, fixture_names
from viltbridge.core.attendance import PERSONAL_ID
from viltbridge.core.errors import Forbidden, InvalidInput
from viltbridge.core.provider import ProviderEvent
from viltbridge.providers.jitsi import webhooks
from viltbridge.providers.jitsi.adapter import JitsiProvider
from viltbridge.providers.jitsi.settings import JitsiSettings
from viltbridge.providers.jitsi.simulator.state import demo_private_key_pem

pytestmark = pytest.mark.pure

APP_ID = "vpaas-magic-cookie-c2824d584eac4489a1e32e4e164d5a3c"
ROOM = "safety-basics-3f9a1c2e7b4d5a6c8e01"
SESSION = "c3348153-1027-4382-afad-5ae91b433c26"
SECRET = "whsec_jaas-endpoint-secret"
STU = "vb-5b0a3c2d9e8f7a6b5c4d3e2f1a0b9c8d"
TESS = "vb-0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def utc(hour: int, minute: int, second: int, ms: int = 0) -> datetime:
    return datetime(2026, 3, 2, hour, minute, second, ms * 1000, tzinfo=UTC)


NOW = utc(15, 30, 0)
PROVIDER = JitsiProvider(JitsiSettings.from_settings({
    "deployment": "jaas", "app_id": APP_ID, "key_id": "k1", "private_key": demo_private_key_pem(),
    "webhook_secret": SECRET}))


def fixture(name: str) -> bytes:
    return fixture_bytes("jitsi", f"{name}.json")


def signed(body: bytes, *, secret: str = SECRET, at: datetime = NOW) -> dict[str, str]:
    return {"X-Jaas-Signature": webhooks.signature_header(body, secret, int(at.timestamp()))}


def read(name: str) -> tuple[ProviderEvent, ...]:
    body = fixture(name)
    return PROVIDER.read_webhook(body, signed(body), NOW).events


# --- every fixture, what it must yield ---------------------------------------------------------------------------

# fixture -> (eventType kept, when it happened) or None when the delivery is acknowledged and not kept.
EXPECTED: dict[str, tuple[str, datetime] | None] = {
    "room_created": ("ROOM_CREATED", utc(14, 58, 0, 112)),
    "participant_joined_moderator": ("PARTICIPANT_JOINED", utc(14, 58, 1, 500)),
    "participant_joined": ("PARTICIPANT_JOINED", utc(15, 1, 10, 112)),
    "participant_joined_breakout": ("PARTICIPANT_JOINED", utc(15, 20, 0, 112)),
    "participant_left": ("PARTICIPANT_LEFT", utc(15, 41, 10, 112)),
    "room_destroyed": ("ROOM_DESTROYED", utc(16, 0, 0, 112)),
    "recording_uploaded": None,
}


def test_every_fixture_has_an_expectation() -> None:
    assert {name.removesuffix(".json") for name in fixture_names("jitsi", "*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_fixture_is_read_as_jaas_sends_it(name: str) -> None:
    events = read(name)
    expected = EXPECTED[name]
    if expected is None:
        assert events == ()
        return
    [event] = events
    body = json.loads(fixture(name))
    assert (event.event, event.occurred_at) == expected
    assert event.meeting_id == ROOM  # the room from fqn: what MeetingRef.meeting_id holds
    assert event.dedupe_key == f"jitsi:{body['idempotencyKey']}"
    assert event.raw == fixture(name).decode()


def test_a_redelivery_keeps_its_dedupe_key() -> None:
    body = fixture("participant_joined")
    first = PROVIDER.read_webhook(body, signed(body), NOW).events[0]
    again = PROVIDER.read_webhook(body, signed(body, at=NOW + timedelta(minutes=2)), NOW + timedelta(minutes=2))
    assert again.events[0].dedupe_key == first.dedupe_key != read("participant_left")[0].dedupe_key


def test_events_of_another_jaas_app_are_not_kept() -> None:
    body = fixture("participant_joined").replace(APP_ID.encode(), b"vpaas-magic-cookie-" + b"e" * 32)
    assert PROVIDER.read_webhook(body, signed(body), NOW).events == ()


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"eventType": 3}', b'{"eventType": "PARTICIPANT_JOINED"}'])
def test_a_signed_body_that_is_not_a_readable_event_is_a_400(body: bytes) -> None:
    with pytest.raises(InvalidInput):
        PROVIDER.read_webhook(body, signed(body), NOW)


# --- the signature -----------------------------------------------------------------------------------------------

JOINED = fixture("participant_joined")


def test_other_schemes_are_ignored_and_any_v1_may_match() -> None:
    stamp = int(NOW.timestamp())
    good = webhooks.sign(JOINED, SECRET, stamp)
    old = webhooks.sign(JOINED, "previous-secret", stamp)
    header = f"t={stamp},v0=abc,v1={old},v1={good},v2=zzz"
    assert PROVIDER.read_webhook(JOINED, {"x-jaas-signature": header}, NOW).events


@pytest.mark.parametrize(("headers", "reason"), [
    ({}, "missing_header"),
    ({"X-Jaas-Signature": "v1=abc"}, "bad_timestamp"),
    ({"X-Jaas-Signature": "t=yesterday,v1=abc"}, "bad_timestamp"),
    ({"X-Jaas-Signature": f"t={int(NOW.timestamp())},v0=abc"}, "no_v1"),
    ({"X-Jaas-Signature": f"t={int(NOW.timestamp())},v1=not-base64!"}, "mismatch"),
    (signed(JOINED, secret="another-secret"), "mismatch"),
    (signed(JOINED, at=NOW - timedelta(minutes=5, seconds=1)), "stale"),
    (signed(JOINED, at=NOW + timedelta(minutes=6)), "future"),
])
def test_missing_wrong_or_stale_signatures_are_refused(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(webhooks.WebhookRejected) as caught:
        PROVIDER.read_webhook(JOINED, headers, NOW)
    assert caught.value.reason == reason and isinstance(caught.value, Forbidden)
    assert "JaaS webhook refused" in caught.value.message


def test_the_tolerance_is_inclusive() -> None:
    assert PROVIDER.read_webhook(JOINED, signed(JOINED, at=NOW - timedelta(minutes=5)), NOW).events


def test_without_a_webhook_secret_nothing_is_accepted() -> None:
    with pytest.raises(Forbidden, match="no webhook_secret"):
        webhooks.verify_signature(JOINED, signed(JOINED), None, NOW)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=512), secret=st.text(min_size=1, max_size=64), data=st.data())
def test_sign_then_verify_holds_and_any_single_byte_change_is_refused(body: bytes, secret: str,
                                                                      data: st.DataObject) -> None:
    headers = signed(body, secret=secret)
    webhooks.verify_signature(body, headers, secret, NOW)
    if body:
        position = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
        flip = data.draw(st.integers(min_value=1, max_value=255))
        changed = bytearray(body)
        changed[position] ^= flip
        with pytest.raises(Forbidden):
            webhooks.verify_signature(bytes(changed), headers, secret, NOW)
    appended = body + data.draw(st.binary(min_size=1, max_size=4))
    with pytest.raises(Forbidden):
        webhooks.verify_signature(appended, headers, secret, NOW)


# --- segments ----------------------------------------------------------------------------------------------------


def events(*names: str) -> list[ProviderEvent]:
    return [event for name in names for event in read(name)]


def test_join_and_leave_make_one_closed_segment_in_any_arrival_order() -> None:
    names = ("room_created", "participant_joined", "participant_left")
    for order in itertools.permutations(names):
        segments = PROVIDER.segments_from_events(events(*order))
        assert [(s.participant_key, s.joined_at, s.left_at) for s in segments] == [
            (STU, utc(15, 1, 10, 112), utc(15, 41, 10, 112))]
        stu = segments[0]
        assert stu.evidence[PERSONAL_ID] == STU and stu.email == "student@example.edu"
        assert stu.instance == SESSION and stu.display_name == "Stu Dent" and stu.evidence["moderator"] is False


def test_an_open_join_stays_open_until_the_room_is_destroyed() -> None:
    [tess] = PROVIDER.segments_from_events(events("participant_joined_moderator"))
    assert tess.left_at is None and tess.evidence["moderator"] is True  # "true" as a string counts
    [tess] = PROVIDER.segments_from_events(events("room_destroyed", "participant_joined_moderator"))
    assert tess.left_at == utc(16, 0, 0, 112)


def test_a_leave_without_its_join_waits_for_the_join() -> None:
    assert PROVIDER.segments_from_events(events("participant_left")) == []


def test_duplicates_change_nothing() -> None:
    once = PROVIDER.segments_from_events(events("participant_joined", "participant_left"))
    twice = PROVIDER.segments_from_events(events("participant_joined", "participant_left", "participant_joined",
                                                 "participant_left"))
    assert once == twice


def test_a_breakout_room_visit_is_its_own_segment_closed_with_the_room() -> None:
    segments = PROVIDER.segments_from_events(events("participant_joined", "participant_joined_breakout",
                                                    "participant_left", "room_destroyed"))
    assert [(s.joined_at, s.left_at, s.evidence.get("breakout_room_id")) for s in segments] == [
        (utc(15, 1, 10, 112), utc(15, 41, 10, 112), None),
        (utc(15, 20, 0, 112), utc(16, 0, 0, 112), "7f0e6d5c-4b3a-4291-8e7d-6c5b4a392817")]


def _event(kind: str, jid: str, minute: int, session: str = SESSION) -> webhooks.JaasEvent:
    data: dict[str, Any] = {"id": "vb-x", "participantJid": jid, "name": "X", "moderator": False}
    return webhooks.JaasEvent(event=kind, dedupe_key=f"{kind}{jid}{minute}{session}", app_id=APP_ID, room=ROOM,
                              session_id=session, occurred_at=utc(15, minute, 0), data=data)


def test_two_devices_of_one_person_and_two_runs_of_the_room_stay_apart() -> None:
    stored = [_event("PARTICIPANT_JOINED", "a", 0), _event("PARTICIPANT_JOINED", "b", 5),
              _event("PARTICIPANT_LEFT", "a", 10), _event("PARTICIPANT_LEFT", "b", 20),
              _event("PARTICIPANT_JOINED", "c", 30, "run-2"), _event("ROOM_DESTROYED", "", 25)]
    segments = webhooks.segments_from_events(stored)
    assert [(s.instance, s.joined_at.minute, s.left_at.minute if s.left_at else None) for s in segments] == [
        (SESSION, 0, 10), (SESSION, 5, 20), ("run-2", 30, None)]  # run 1's destruction does not close run 2
