"""Webex webhooks: the X-Spark-Signature check on the raw body, events kept once, and live segments rebuilt from
them, including deliveries the simulator signs and posts to a real receiver."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.providers.fixtures import fixture_bytes
from tests.providers.webex.conftest import HOST, T0
from viltbridge.core.errors import Forbidden
from viltbridge.providers.serving import BackgroundServer
from viltbridge.providers.webex import webhooks
from viltbridge.providers.webex.adapter import WebexProvider
from viltbridge.providers.webex.settings import WebexSettings
from viltbridge.providers.webex.simulator import WebexSimulator

pytestmark = pytest.mark.pure

SECRET = "hook-secret"
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
JOINED = fixture_bytes("webex", "webhook_participant_joined.json")
LEFT = fixture_bytes("webex", "webhook_participant_left.json")
ENDED = fixture_bytes("webex", "webhook_meeting_ended.json")


def _provider(secret: str | None = SECRET) -> WebexProvider:
    raw = {"access_token": "t", **({"webhook_secret": secret} if secret else {})}
    return WebexProvider(WebexSettings.from_settings(raw))


def _signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Spark-Signature": hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()}


PROVIDER = _provider()


def test_a_correctly_signed_delivery_is_kept_under_its_series() -> None:
    delivery = PROVIDER.read_webhook(JOINED, _signed(JOINED), NOW)
    assert delivery.reply is None and len(delivery.events) == 1
    event = delivery.events[0]
    assert event.event == "meetingParticipants.joined"
    assert event.meeting_id == "870f51ff287b41be84648412901e0402"  # the series, as MeetingRef.meeting_id holds it
    assert event.occurred_at == datetime(2026, 3, 2, 9, 1, 10, tzinfo=UTC)
    assert event.raw == JOINED.decode()


def test_header_names_are_matched_without_regard_to_case() -> None:
    signature = _signed(ENDED)["X-Spark-Signature"]
    assert PROVIDER.read_webhook(ENDED, {"x-spark-signature": signature.upper()}, NOW).events


@pytest.mark.parametrize(("headers", "reason"), [
    ({}, "missing_header"),
    ({"X-Spark-Signature": "0" * 40}, "bad_signature"),
    (_signed(JOINED, "another-secret"), "bad_signature"),
    ({"X-Spark-Signature": hmac.new(SECRET.encode(), JOINED, hashlib.sha256).hexdigest()}, "bad_signature"),
])
def test_unsigned_or_wrongly_signed_deliveries_are_refused(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(webhooks.WebhookRejected) as caught:
        PROVIDER.read_webhook(JOINED, headers, NOW)
    assert caught.value.reason == reason and isinstance(caught.value, Forbidden)


def test_without_a_configured_secret_nothing_is_accepted() -> None:
    with pytest.raises(Forbidden, match="no webhook_secret is configured"):
        _provider(None).read_webhook(JOINED, _signed(JOINED), NOW)


@settings(max_examples=300, deadline=None)
@given(position=st.integers(min_value=0, max_value=len(JOINED) - 1), flip=st.integers(min_value=1, max_value=255))
def test_any_single_byte_change_to_the_body_is_refused(position: int, flip: int) -> None:
    signature = _signed(JOINED)
    changed = bytearray(JOINED)
    changed[position] ^= flip
    with pytest.raises(webhooks.WebhookRejected):
        PROVIDER.read_webhook(bytes(changed), signature, NOW)


def test_a_redelivery_has_the_same_dedupe_key_and_another_event_does_not() -> None:
    first = PROVIDER.read_webhook(JOINED, _signed(JOINED), NOW).events[0]
    again = PROVIDER.read_webhook(JOINED, _signed(JOINED), NOW + timedelta(minutes=1)).events[0]
    left = PROVIDER.read_webhook(LEFT, _signed(LEFT), NOW).events[0]
    assert first.dedupe_key == again.dedupe_key != left.dedupe_key


def test_a_body_that_is_not_a_webex_event_is_refused_even_when_signed() -> None:
    for body in (b"not json", b"[]", b'{"resource": "meetings"}'):
        with pytest.raises(webhooks.WebhookRejected):
            PROVIDER.read_webhook(body, _signed(body), NOW)


def _events(*bodies: bytes) -> list:  # type: ignore[type-arg]
    return [PROVIDER.read_webhook(body, _signed(body), NOW).events[0] for body in bodies]


def test_join_and_leave_make_one_closed_segment_whatever_the_order() -> None:
    for order in ((JOINED, LEFT, ENDED), (LEFT, ENDED, JOINED)):
        segments = PROVIDER.segments_from_events(_events(*order))
        assert [(s.email, s.joined_at, s.left_at) for s in segments] == [
            ("student@example.edu", datetime(2026, 3, 2, 9, 1, 10, tzinfo=UTC),
             datetime(2026, 3, 2, 9, 20, tzinfo=UTC))]
        assert segments[0].instance == "870f51ff287b41be84648412901e0402_I_197977258267247872"


def test_a_join_alone_is_an_open_segment_and_a_leave_alone_is_closed() -> None:
    assert [s.left_at for s in PROVIDER.segments_from_events(_events(JOINED))] == [None]
    assert [s.left_at for s in PROVIDER.segments_from_events(_events(LEFT))] == [
        datetime(2026, 3, 2, 9, 20, tzinfo=UTC)]


# -- the simulator's deliveries, received over HTTP ------------------------------------------------------------------


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[bytes, dict[str, str]]] = []

    async def handle(self, request: Request) -> Response:
        self.received.append((await request.body(), dict(request.headers)))
        return Response(status_code=200)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    sink = Receiver()
    server = BackgroundServer(Starlette(routes=[Route("/hook", sink.handle, methods=["POST"])]))
    server.start()
    yield sink, server.url + "/hook"
    server.stop()


async def test_the_simulators_signed_deliveries_rebuild_the_attendance(
        webex_simulator: WebexSimulator, receiver: tuple[Receiver, str]) -> None:
    sink, url = receiver
    sim = webex_simulator
    sim.reset(start=T0, webhook_url=url)
    sim.state.seed_person(HOST.email)
    provider = WebexProvider.from_settings(sim.settings())
    body = {"title": "Live", "start": (T0 + timedelta(minutes=10)).isoformat(),
            "end": (T0 + timedelta(hours=1)).isoformat(), "hostEmail": HOST.email}
    meeting = await provider.client.create_meeting(body)
    sim.state.join(meeting["id"], "Lee Learner", "lee@example.com", at=T0 + timedelta(minutes=10))
    sim.state.leave(meeting["id"], "lee@example.com", at=T0 + timedelta(minutes=30))
    sim.state.join(meeting["id"], "Lee Learner", "lee@example.com", at=T0 + timedelta(minutes=35))
    sim.state.end_meeting(meeting["id"], at=T0 + timedelta(minutes=50))
    events = [event for raw, headers in sink.received for event in provider.read_webhook(raw, headers, T0).events]
    assert [e.event for e in events] == ["meetings.started", "meetingParticipants.joined",
                                         "meetingParticipants.left", "meetingParticipants.joined", "meetings.ended"]
    assert {e.meeting_id for e in events} == {meeting["id"]}
    segments = sorted(provider.segments_from_events(events), key=lambda s: s.joined_at)
    assert [(s.joined_at - T0, s.left_at - T0 if s.left_at else None) for s in segments] == [
        (timedelta(minutes=10), timedelta(minutes=30)), (timedelta(minutes=35), None)]
    await provider.aclose()
