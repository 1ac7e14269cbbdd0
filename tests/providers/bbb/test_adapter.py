"""The adapter against the simulator: create, personal launches, edits, end, and attendance from the callback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.providers.bbb.conftest import COHOST, HOST, T0
from tests.providers.conftest import Capture, meeting_spec
from viltbridge.core.errors import Forbidden, ProviderFailed
from viltbridge.core.models import Role
from viltbridge.core.provider import Person
from viltbridge.providers.bbb.adapter import BbbProvider, meeting_id_for
from viltbridge.providers.bbb.settings import BbbSettings
from viltbridge.providers.bbb.simulator import BbbSimulator
from viltbridge.providers.naming import personal_id_for
from viltbridge.providers.serving import BackgroundServer

spec = meeting_spec(HOST, COHOST)
LEARNER = Person("Lee@Example.com", "Lee", "Learner")


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


class Receiver:
    """viltbridge's webhook route stand-in: keeps each delivery's raw body and headers."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[bytes, dict[str, str]]] = []

    async def receive(self, request: Request) -> Response:
        self.deliveries.append((await request.body(), dict(request.headers)))
        return Response(status_code=204)


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    target = Receiver()
    server = BackgroundServer(Starlette(routes=[Route("/webhooks/7", target.receive, methods=["POST"])]))
    server.start()
    yield target, server.url + "/webhooks/7"
    server.stop()


async def test_create_uses_a_stable_meeting_id_and_tags_the_session(provider: BbbProvider, sim: BbbSimulator) -> None:
    meeting = await provider.create_meeting(spec())
    assert meeting.meeting_id == meeting_id_for("1:sess-1") and meeting.meeting_id.startswith("vb-1-sess-1-")
    created = sim.state.meetings[meeting.meeting_id]
    assert created.metadata["viltbridge-session"] == "1:sess-1" and created.name == "Safety basics"
    again = await provider.create_meeting(spec())  # a retried create finds the same meeting
    assert again.meeting_id == meeting.meeting_id and len(sim.state.meetings) == 1


def test_meeting_ids_of_similar_keys_differ() -> None:
    assert meeting_id_for("1:a b") != meeting_id_for("1:a-b")


async def test_each_person_gets_a_signed_link_with_their_role(provider: BbbProvider, sim: BbbSimulator) -> None:
    meeting = await provider.create_meeting(spec())
    host = await provider.launch_link(meeting, Person(HOST.email, "Tess", "Teacher"), Role.HOST)
    learner = await provider.launch_link(meeting, LEARNER, Role.ATTENDEE)
    assert query(host.url)["role"] == "MODERATOR" and query(learner.url)["role"] == "VIEWER"
    assert query(learner.url)["fullName"] == "Lee Learner"
    assert learner.personal and learner.identity["personal_id"] == query(learner.url)["userID"]
    assert learner.identity["personal_id"] == personal_id_for("lee@example.com", sim.config.shared_secret)
    assert "lee" not in learner.identity["personal_id"].lower()
    assert httpx2.get(learner.url).status_code == 302
    assert "vb-" in next(iter(sim.state.meetings[meeting.meeting_id].attendees))


async def test_roles_are_right_on_a_server_older_than_2_4(sim: BbbSimulator) -> None:
    """Before 2.4 BBB ignores join's `role` and decides by `password`: the instructor still moderates, the learner
    does not, also when the meeting is created again at the launch."""
    sim.reset(start=T0, version=(2, 3))
    adapter = BbbProvider.from_settings(sim.settings())
    try:
        meeting = await adapter.create_meeting(spec())
        host = await adapter.launch_link(meeting, Person(HOST.email, "Tess", "Teacher"), Role.HOST)
        learner = await adapter.launch_link(meeting, LEARNER, Role.ATTENDEE)
        assert httpx2.get(host.url).status_code == 302 and httpx2.get(learner.url).status_code == 302
        joined = sim.state.meetings[meeting.meeting_id].attendees.values()
        assert {a.full_name: a.role for a in joined} == {"Tess Teacher": "MODERATOR", "Lee Learner": "VIEWER"}
        # A learner cannot turn their signed link into a moderator's: the checksum covers the password.
        forged = learner.url.replace("role=VIEWER", "role=MODERATOR")
        assert "<messageKey>checksumError</messageKey>" in httpx2.get(forged).text
    finally:
        await adapter.aclose()


async def test_a_launch_recreates_a_meeting_bbb_dropped(provider: BbbProvider, sim: BbbSimulator) -> None:
    meeting = await provider.create_meeting(spec())
    sim.state.meetings.clear()  # nobody joined within minutes: BBB removed it
    link = await provider.launch_link(meeting, LEARNER, Role.ATTENDEE)
    assert link.note is None and httpx2.get(link.url).status_code == 302


async def test_a_launch_when_bbb_refuses_still_gives_the_link_with_a_note(sim: BbbSimulator) -> None:
    adapter = BbbProvider.from_settings(sim.settings(shared_secret="wrong-secret-123"))
    meeting = await BbbProvider.from_settings(sim.settings()).create_meeting(spec())
    link = await adapter.launch_link(meeting, LEARNER, Role.ATTENDEE)
    assert link.note is not None and "shared_secret" in link.note
    await adapter.aclose()


async def test_a_wrong_secret_fails_create_with_a_readable_message(sim: BbbSimulator) -> None:
    adapter = BbbProvider.from_settings(sim.settings(shared_secret="wrong-secret-123"))
    with pytest.raises(ProviderFailed, match="bbb-conf --secret"):
        await adapter.create_meeting(spec())
    await adapter.aclose()


async def test_edits_keep_the_link_and_apply_at_the_next_create(provider: BbbProvider, sim: BbbSimulator) -> None:
    meeting = await provider.create_meeting(spec())
    edited = await provider.update_meeting(meeting, spec(title="Safety basics II"))
    assert edited.join_url == meeting.join_url and edited.meeting_id == meeting.meeting_id
    sim.state.meetings.clear()
    await provider.launch_link(edited, LEARNER, Role.ATTENDEE)
    assert sim.state.meetings[meeting.meeting_id].name == "Safety basics II"


async def test_cancel_ends_the_running_meeting(provider: BbbProvider, sim: BbbSimulator) -> None:
    meeting = await provider.create_meeting(spec())
    sim.state.join(meeting.meeting_id, "u1", "Ann")
    assert (await provider.meeting_facts(meeting)).title == "Safety basics"  # type: ignore[union-attr]
    await provider.cancel_meeting(meeting)
    assert meeting.meeting_id not in sim.state.meetings
    assert await provider.meeting_facts(meeting) is not None  # absent at BBB is normal, not "deleted"


async def test_attendance_comes_from_the_analytics_callback(
        sim: BbbSimulator, receiver: tuple[Receiver, str]) -> None:
    target, url = receiver
    target.deliveries.clear()
    now = [T0]
    provider = BbbProvider(BbbSettings.from_settings(sim.settings(analytics_callback_url=url)), clock=lambda: now[0])
    meeting = await provider.create_meeting(spec())
    learner = await provider.launch_link(meeting, LEARNER, Role.ATTENDEE)
    httpx2.get(learner.url)
    assert not (await provider.collect_attendance(meeting, spec())).complete  # running
    sim.state.advance(25 * 60)
    sim.state.leave(meeting.meeting_id, learner.identity["personal_id"])
    sim.state.advance(5 * 60)
    await provider.cancel_meeting(meeting)

    (raw, headers), = target.deliveries
    delivery = provider.read_webhook(raw, headers, sim.state.now())
    segments = provider.segments_from_events(list(delivery.events))
    assert [(s.participant_key, s.joined_at, s.left_at) for s in segments] == [
        (learner.identity["personal_id"], T0, T0 + timedelta(minutes=25))]
    assert segments[0].evidence["personal_id"] == learner.identity["personal_id"]
    assert segments[0].instance == sim.state.ended[0].internal_id

    now[0] = spec().ends_at + timedelta(minutes=5)
    waiting = await provider.collect_attendance(meeting, spec())
    assert not waiting.complete and waiting.retry_after_seconds
    now[0] = spec().ends_at + timedelta(hours=1)
    assert (await provider.collect_attendance(meeting, spec())).complete
    with pytest.raises(Forbidden):
        provider.read_webhook(raw, {**headers, "authorization": headers["authorization"][:-4] + "AAAA"},
                              sim.state.now())
    with pytest.raises(Forbidden, match="expired"):
        provider.read_webhook(raw, headers, sim.state.now() + timedelta(hours=25))
    await provider.aclose()


async def test_the_secret_is_never_logged(sim: BbbSimulator) -> None:
    capture = Capture()
    logging.getLogger("viltbridge").addHandler(capture)
    logging.getLogger("viltbridge").setLevel(logging.DEBUG)
    try:
        adapter = BbbProvider.from_settings(sim.settings())
        meeting = await adapter.create_meeting(spec())
        await adapter.launch_link(meeting, LEARNER, Role.ATTENDEE)
        await adapter.aclose()
    finally:
        logging.getLogger("viltbridge").removeHandler(capture)
    assert capture.lines and not any(sim.config.shared_secret in line for line in capture.lines)
