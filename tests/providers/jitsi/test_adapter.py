"""The Jitsi adapter's own rules: honest capabilities per deployment, stable unguessable rooms, local cancel,
completeness after the webhook grace, and a learner's launch identity echoed back by JaaS's webhooks."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.providers.conftest import Capture
from tests.providers.jitsi.conftest import T0
from viltbridge.core.attendance import PERSONAL_ID
from viltbridge.core.errors import Forbidden
from viltbridge.core.models import Role
from viltbridge.core.provider import AttendanceSource, MeetingFacts, MeetingSpec, Person
from viltbridge.providers.jitsi.adapter import JitsiProvider, room_name
from viltbridge.providers.jitsi.settings import JitsiSettings
from viltbridge.providers.jitsi.simulator import JitsiSimulator
from viltbridge.providers.serving import BackgroundServer

pytestmark = pytest.mark.pure

START = T0 + timedelta(minutes=10)


def spec(**changes: Any) -> MeetingSpec:
    values: dict[str, Any] = {"session_key": "1:sess-1", "title": "Forklift safety: part 1 (Zürich)",
                              "description": "", "starts_at": START, "ends_at": START + timedelta(hours=1),
                              "zone": "Europe/Zurich", "utc_offset_minutes": 60, "host": None, **changes}
    return MeetingSpec(**values)


def test_capabilities_say_what_each_deployment_can_do(sim: JitsiSimulator) -> None:
    jaas = JitsiProvider.from_settings(sim.settings()).capabilities
    assert (jaas.per_user_links, jaas.webhooks, jaas.attendance, jaas.host_licences) == (
        True, True, AttendanceSource.WEBHOOKS, False)
    assert jaas.update_in_place and jaas.cancel
    sim.reset(start=T0, deployment="self_hosted")
    plain = JitsiProvider.from_settings(sim.settings()).capabilities
    assert (plain.webhooks, plain.attendance, plain.per_user_links) == (False, AttendanceSource.LAUNCH_ONLY, True)
    events = JitsiProvider.from_settings(sim.settings(webhook_secret="s" * 20)).capabilities
    assert (events.webhooks, events.attendance) == (True, AttendanceSource.WEBHOOKS)


async def test_rooms_are_readable_stable_and_unguessable(provider: JitsiProvider, sim: JitsiSimulator) -> None:
    first = await provider.create_meeting(spec())
    again = await JitsiProvider.from_settings(sim.settings()).create_meeting(spec(may_exist=True))
    assert first.meeting_id == again.meeting_id and first.join_url == again.join_url  # a retried create
    assert first.meeting_id.startswith("forklift-safety-part-1-zurich-")
    assert first.join_url == f"{sim.base_url}/{sim.config.app_id}/{first.meeting_id}"
    other = await provider.create_meeting(spec(session_key="1:sess-2"))
    assert other.meeting_id != first.meeting_id
    # The suffix depends on the connection's secret: another app's rooms for the same session differ.
    assert room_name("Forklift", "1:sess-1", "a") != room_name("Forklift", "1:sess-1", "b")
    assert room_name("   ", "1:sess-1", "a").startswith("class-")


async def test_an_edit_keeps_the_room_and_changes_the_token_window(provider: JitsiProvider) -> None:
    meeting = await provider.create_meeting(spec())
    moved = await provider.update_meeting(meeting, spec(title="Renamed", starts_at=START + timedelta(days=1),
                                                        ends_at=START + timedelta(days=1, hours=1)))
    assert (moved.meeting_id, moved.join_url) == (meeting.meeting_id, meeting.join_url)
    now = START - timedelta(minutes=5)
    assert provider.token_window(moved, now)[1] == START + timedelta(days=1, hours=1, minutes=90)


async def test_cancel_is_local_and_facts_say_nothing(provider: JitsiProvider) -> None:
    meeting = await provider.create_meeting(spec())
    await provider.cancel_meeting(meeting)
    await provider.cancel_meeting(meeting)
    assert await provider.meeting_facts(meeting) == MeetingFacts()


@pytest.mark.parametrize(("minutes_after_end", "complete"), [(-30, False), (14, False), (15, True), (120, True)])
async def test_attendance_is_complete_after_the_webhook_grace(sim: JitsiSimulator, minutes_after_end: int,
                                                              complete: bool) -> None:
    now = START + timedelta(hours=1, minutes=minutes_after_end)
    provider = JitsiProvider(JitsiSettings.from_settings(sim.settings()), clock=lambda: now)
    meeting = await provider.create_meeting(spec())
    report = await provider.collect_attendance(meeting, spec())
    assert report.segments == () and report.complete is complete
    assert (report.retry_after_seconds is None) is complete
    if not complete:
        assert report.retry_after_seconds == (timedelta(minutes=15 - minutes_after_end).total_seconds() + 1)


async def test_without_events_a_self_hosted_part_is_complete_at_once_and_refuses_deliveries(
        self_hosted: JitsiSimulator) -> None:
    provider = JitsiProvider.from_settings(self_hosted.settings())
    meeting = await provider.create_meeting(spec())
    assert (await provider.collect_attendance(meeting, spec())).complete
    with pytest.raises(Forbidden, match="no webhook_secret"):
        provider.read_webhook(b"{}", {}, T0)


async def test_secrets_stay_out_of_the_logs(sim: JitsiSimulator) -> None:
    capture, logger = Capture(), logging.getLogger("viltbridge")
    level = logger.level
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    try:
        provider = JitsiProvider.from_settings(sim.settings())
        meeting = await provider.create_meeting(spec())
        await provider.launch_link(meeting, Person("ann@example.com"), Role.ATTENDEE)
        await provider.cancel_meeting(meeting)
        texts = [*capture.lines, repr(provider), repr(provider.settings), repr(provider.signer)]
    finally:
        logger.removeHandler(capture)
        logger.setLevel(level)
    assert capture.lines  # it does log what it does ...
    for text in texts:  # ... and never a key, a secret or a token
        assert "PRIVATE KEY" not in text and sim.config.webhook_secret not in text and "jwt=" not in text


# --- a learner's identity, round trip through the simulator ------------------------------------------------------


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


async def test_the_launch_identity_comes_back_in_the_webhooks(jitsi_simulator: JitsiSimulator,
                                                              receiver: tuple[Receiver, str]) -> None:
    sink, url = receiver
    sim = jitsi_simulator
    state = sim.reset(start=START - timedelta(minutes=5), deployment="jaas", webhook_url=url)
    provider = JitsiProvider.from_settings(sim.settings())
    meeting = await provider.create_meeting(spec())
    ann = await provider.launch_link(meeting, Person("Ann@Example.com"), Role.ATTENDEE)
    tess = await provider.launch_link(meeting, Person("tess@example.com"), Role.HOST)
    assert ann.personal and ann.identity[PERSONAL_ID] != tess.identity[PERSONAL_ID]
    assert httpx2.get(tess.url).status_code == 200 and httpx2.get(ann.url).status_code == 200
    state.advance(45 * 60)
    state.leave(meeting.meeting_id, ann.identity[PERSONAL_ID])
    state.advance(20 * 60)
    state.destroy_room(meeting.meeting_id)
    now = state.now()
    # Each delivery is read when it arrived (the simulator's clock then), as the webhook route does.
    events = [e for raw, headers in sink.received for e in provider.read_webhook(raw, headers, _sent_at(raw)).events]
    assert {e.meeting_id for e in events} == {meeting.meeting_id}
    segments = {s.evidence[PERSONAL_ID]: s for s in provider.segments_from_events(events)}
    assert set(segments) == {ann.identity[PERSONAL_ID], tess.identity[PERSONAL_ID]}
    ann_segment = segments[ann.identity[PERSONAL_ID]]
    assert ann_segment.left_at is not None
    assert ann_segment.left_at - ann_segment.joined_at == timedelta(minutes=45)
    assert segments[tess.identity[PERSONAL_ID]].left_at == now  # closed when the room was destroyed
    assert segments[tess.identity[PERSONAL_ID]].evidence["moderator"] is True


def _sent_at(raw: bytes) -> datetime:
    return datetime.fromtimestamp(json.loads(raw)["timestamp"] / 1000, tz=UTC)
