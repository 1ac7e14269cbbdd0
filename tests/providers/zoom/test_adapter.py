"""The Zoom adapter's own behaviour (beyond the shared acceptance suite), against the simulator over HTTP."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta

import httpx2
import pytest

from tests.providers.conftest import Harness, meeting_spec, zoom_settings
from tests.providers.zoom.harness import zoom_harness
from viltbridge.core.errors import InvalidInput
from viltbridge.core.models import Role
from viltbridge.core.provider import HOST_ACCOUNT, InstructorSpec, Person
from viltbridge.providers.zoom.adapter import ZoomProvider, name_tag
from viltbridge.providers.zoom.simulator import ZoomSimulator
from viltbridge.providers.zoom.simulator.state import ZoomState

pytestmark = pytest.mark.pure


@pytest.fixture
def zoom(zoom_simulator: ZoomSimulator) -> Harness:
    return zoom_harness(zoom_simulator)


async def test_hosts_must_be_licensed_users_of_the_account(zoom: Harness, zoom_simulator: ZoomSimulator) -> None:
    zoom_simulator.state.seed_user("basic@example.com", type=1)
    with pytest.raises(InvalidInput, match="without a licence"):
        await zoom.provider.provision_instructor(InstructorSpec("basic@example.com", "B", "Asic"))
    with pytest.raises(InvalidInput, match="not a user on this Zoom account"):
        await zoom.provider.provision_instructor(InstructorSpec("stranger@example.com", "S", "Tranger"))
    provisioned = await zoom.provider.provision_instructor(zoom.host)
    assert provisioned.licensed and provisioned.provider_user_id


async def test_missing_hosts_are_created_when_the_policy_says_so(zoom_simulator: ZoomSimulator, zoom: Harness) -> None:
    provider = ZoomProvider.from_settings(zoom_settings(zoom_simulator, host_policy="create"))
    provisioned = await provider.provision_instructor(InstructorSpec("new@example.com", "New", "Host"))
    assert provisioned.provider_user_id
    assert any(u["email"] == "new@example.com" for u in zoom_simulator.state.snapshot()["users"])


async def test_meetings_are_created_with_registration_and_alternative_hosts(zoom: Harness,
                                                                          zoom_simulator: ZoomSimulator) -> None:
    meeting = await zoom.provider.create_meeting(zoom.spec(extended_options={"waiting_room": True}))
    assert isinstance(zoom.provider, ZoomProvider)
    current = await zoom.provider.client.get_meeting(meeting.meeting_id)
    assert current["settings"]["approval_type"] == 0
    assert zoom.cohost.email in current["settings"]["alternative_hosts"]
    assert current["settings"]["waiting_room"] is True
    assert current["duration"] == 60 and current["topic"] == "Safety basics"
    assert meeting.host_url is None  # start links are never stored
    assert meeting.data[HOST_ACCOUNT] == current["host_id"]  # the account a scheduling conflict is judged by


async def test_an_edit_updates_in_place(zoom: Harness) -> None:
    meeting = await zoom.provider.create_meeting(zoom.spec())
    moved = zoom.spec(title="Moved", starts_at=zoom.spec().starts_at + timedelta(hours=2))
    edited = await zoom.provider.update_meeting(meeting, moved)
    assert (edited.meeting_id, edited.join_url) == (meeting.meeting_id, meeting.join_url)
    assert isinstance(zoom.provider, ZoomProvider)
    current = await zoom.provider.client.get_meeting(meeting.meeting_id)
    assert current["topic"] == "Moved" and current["start_time"].startswith("2026-03-02T17:00")


async def test_a_session_without_a_host_needs_a_default_host(zoom: Harness, zoom_simulator: ZoomSimulator) -> None:
    with pytest.raises(InvalidInput, match="default_host"):
        await zoom.provider.create_meeting(zoom.spec(host=None))
    provider = ZoomProvider.from_settings(zoom_settings(zoom_simulator, default_host=zoom.host.email))
    assert (await provider.create_meeting(zoom.spec(host=None))).meeting_id


async def test_hosts_get_a_fresh_start_link_and_learners_a_personal_registrant_link(zoom: Harness) -> None:
    meeting = await zoom.provider.create_meeting(zoom.spec())
    start = await zoom.provider.launch_link(meeting, Person(zoom.host.email), Role.HOST)
    again = await zoom.provider.launch_link(meeting, Person(zoom.host.email), Role.HOST)
    assert "zak=" in start.url and start.url != meeting.join_url
    assert not start.personal  # never reused from the ledger: start links expire and carry the host's token
    assert again.url.split("zak=")[0] == start.url.split("zak=")[0]
    learner = await zoom.provider.launch_link(meeting, Person("Jane.Doe@example.com"), Role.ATTENDEE)
    assert learner.personal and learner.identity.get("personal_id")
    assert learner.url != meeting.join_url


async def test_a_second_click_reuses_the_registrant_link_without_calling_zoom(zoom: Harness,
                                                                            zoom_simulator: ZoomSimulator) -> None:
    meeting = await zoom.provider.create_meeting(zoom.spec())
    first = await zoom.provider.launch_link(meeting, Person("jane@example.com"), Role.ATTENDEE)
    zoom_simulator.state.inject_fault(500, count=5, path="registrants")  # any call now would fail
    again = await zoom.provider.launch_link(meeting, Person("jane@example.com"), Role.ATTENDEE, previous=first)
    assert again == first


async def test_a_link_for_another_meeting_is_not_reused(zoom: Harness) -> None:
    old = await zoom.provider.create_meeting(zoom.spec())
    new = await zoom.provider.create_meeting(zoom.spec(session_key="1:sess-2"))
    stale = await zoom.provider.launch_link(old, Person("jane@example.com"), Role.ATTENDEE)
    fresh = await zoom.provider.launch_link(new, Person("jane@example.com"), Role.ATTENDEE, previous=stale)
    assert fresh.personal and fresh.identity["meeting_id"] == new.meeting_id and fresh.url != stale.url


async def test_waiting_room_time_is_not_attendance(zoom: Harness, zoom_simulator: ZoomSimulator) -> None:
    """The adapter keeps waiting-room rows, marked as such: the attendance policy decides whether they count."""
    meeting = await zoom.provider.create_meeting(zoom.spec(extended_options={"waiting_room": True}))
    link = await zoom.provider.launch_link(meeting, Person("wait@example.com"), Role.ATTENDEE)
    state = zoom_simulator.state
    state.start_meeting(meeting.meeting_id)
    state.join(meeting.meeting_id, "Waiting Will", registrant="wait@example.com", waiting_room=True)
    state.advance_clock(3600)
    state.end_meeting(meeting.meeting_id)
    state.mark_report_processed(meeting.meeting_id)
    report = await zoom.provider.collect_attendance(meeting, zoom.spec())
    [will] = [segment for segment in report.segments if segment.display_name == "Waiting Will"]
    assert will.evidence["status"] == "in_waiting_room"
    assert will.evidence["personal_id"] == link.identity["personal_id"] and will.evidence["instance_uuid"]
    assert will.left_at is not None and will.left_at - will.joined_at == timedelta(hours=1)
    assert all(s.evidence["status"] == "in_meeting" for s in report.segments if s is not will)


async def test_when_registration_cannot_answer_in_time_the_learner_is_held_then_sent_to_the_form(
        zoom: Harness, zoom_simulator: ZoomSimulator) -> None:
    meeting = await zoom.provider.create_meeting(zoom.spec())
    zoom_simulator.state.inject_fault(delay=30.0, count=5, path="registrants")
    started = time.monotonic()
    link = await zoom.provider.launch_link(meeting, Person("slow@example.com"), Role.ATTENDEE)
    assert time.monotonic() - started < 15  # the 3 s launch budget (and slack for a busy machine), not Zoom's 30 s
    # Zoom admits only registrants here, so a tagged meeting link would land on the form anyway: say so plainly.
    assert not link.personal and link.identity == {"meeting_id": meeting.meeting_id, "fallback": "registration_form"}
    assert link.url == meeting.data["registration_url"] and link.retry_after_seconds
    assert link.note and "registration failed" in link.note


async def test_zoom_sends_people_without_a_registrant_link_to_the_registration_form(
        zoom_simulator: ZoomSimulator) -> None:
    """The simulator behaves as Zoom does, which is why the adapter never hands out a bare meeting link there."""
    host = InstructorSpec("tess@example.com", "Tess", "Teacher")
    zoom_simulator.state.seed_user(host.email)
    spec = meeting_spec(host, host)(co_hosts=())
    with_registration = ZoomProvider.from_settings(zoom_settings(zoom_simulator))
    without = ZoomProvider.from_settings(zoom_settings(zoom_simulator, learner_links="name_tag"))
    registered, open_meeting = (await with_registration.create_meeting(spec), await without.create_meeting(spec))
    async with httpx2.AsyncClient() as browser:
        tagged = await browser.get(registered.join_url + "&uname=Someone%20vb-1234")
        assert tagged.status_code == 302 and tagged.headers["location"] == registered.data["registration_url"]
        assert (await browser.get(open_meeting.join_url)).status_code == 200
    for provider in (with_registration, without):
        await provider.aclose()


async def test_name_tag_links_need_no_registration_and_no_zoom_call(zoom: Harness,
                                                                   zoom_simulator: ZoomSimulator) -> None:
    provider = ZoomProvider.from_settings(zoom_settings(zoom_simulator, learner_links="name_tag"))
    meeting = await provider.create_meeting(zoom.spec())
    assert (await provider.client.get_meeting(meeting.meeting_id))["settings"]["approval_type"] == 2
    zoom_simulator.state.inject_fault(500, count=10)  # any call on a click would now fail
    link = await provider.launch_link(meeting, Person("tag@example.com", "Tanya"), Role.ATTENDEE)
    zoom_simulator.state.clear_faults()
    tag = name_tag(zoom_simulator.config.client_secret, meeting.meeting_id, "tag@example.com")
    assert not link.personal and link.identity == {"display_name_tag": tag, "meeting_id": meeting.meeting_id}
    assert link.url.startswith(meeting.join_url) and tag in link.url and link.note is None
    await provider.aclose()


def test_registration_on_a_free_plan_is_refused_with_what_to_set(zoom_simulator: ZoomSimulator) -> None:
    with pytest.raises(InvalidInput, match="learner_links=name_tag"):
        ZoomProvider.from_settings(zoom_settings(zoom_simulator, plan="free"))
    assert ZoomProvider.from_settings(zoom_settings(zoom_simulator, plan="free", learner_links="name_tag"))


async def test_someone_who_registered_on_zooms_form_is_matched_by_their_registration_email(
        zoom: Harness, zoom_simulator: ZoomSimulator) -> None:
    meeting = await zoom.provider.create_meeting(zoom.spec())
    async with httpx2.AsyncClient() as browser:
        form = await browser.post(str(meeting.data["registration_url"]),
                                  data={"email": "Form.Filler@Example.com", "first_name": "Form"})
        assert form.status_code == 200 and "Check your email" in form.text
    state = zoom_simulator.state
    state.start_meeting(meeting.meeting_id)
    state.join(meeting.meeting_id, "iPad", registrant="Form.Filler@Example.com")  # a guest: no email in the report
    state.advance_clock(3600)
    state.end_meeting(meeting.meeting_id)
    state.mark_report_processed(meeting.meeting_id)
    report = await zoom.provider.collect_attendance(meeting, zoom.spec())
    (row,) = [segment for segment in report.segments if segment.display_name == "iPad"]
    assert row.email == "Form.Filler@Example.com" and row.evidence["registrant_email"] == row.email


async def test_an_inactive_instructor_is_left_alone_or_deactivated_as_the_policy_says(
        zoom: Harness, zoom_simulator: ZoomSimulator) -> None:
    state = zoom_simulator.state
    leaving = InstructorSpec("leaving@example.com", "Lea", "Ving", active=False)
    state.seed_user(leaving.email)
    kept = await zoom.provider.update_instructor(leaving.email, leaving)
    assert not kept.licensed and _status(state, leaving.email) == "active"

    strict = ZoomProvider.from_settings(zoom_settings(zoom_simulator, deactivated_hosts="deactivate"))
    gone = await strict.update_instructor(leaving.email, leaving)
    assert gone.data["status"] == "inactive" and _status(state, leaving.email) == "inactive"
    assert (await strict.update_instructor(leaving.email, leaving)).data["status"] == "inactive"  # again: no-op

    back = await strict.update_instructor(leaving.email, replace(leaving, active=True))
    assert back.licensed and _status(state, leaving.email) == "active"
    # An inactive instructor Zoom does not know is nothing to deactivate.
    unknown = await strict.provision_instructor(InstructorSpec("nobody@example.com", "No", "Body", active=False))
    assert unknown.provider_user_id is None
    await strict.aclose()


def _status(state: ZoomState, email: str) -> str:
    user = state.find_user(email)
    assert user is not None
    return user.status


async def test_attendance_comes_from_the_report_with_registrant_evidence(zoom: Harness,
                                                                       zoom_simulator: ZoomSimulator) -> None:
    meeting = await zoom.provider.create_meeting(zoom.spec())
    learner = await zoom.provider.launch_link(meeting, Person("jane@example.com"), Role.ATTENDEE)
    before = await zoom.provider.collect_attendance(meeting, zoom.spec())
    assert before.segments == () and not before.complete and before.retry_after_seconds
    state = zoom_simulator.state
    state.start_meeting(meeting.meeting_id)
    state.join(meeting.meeting_id, "Laptop of J.", registrant="jane@example.com")  # as a guest, another name
    state.advance_clock(1800)
    state.leave(meeting.meeting_id, "Laptop of J.")
    state.end_meeting(meeting.meeting_id)
    pending = await zoom.provider.collect_attendance(meeting, zoom.spec())
    assert not pending.complete  # Zoom says duration 0 until its report is processed
    state.mark_report_processed(meeting.meeting_id)
    report = await zoom.provider.collect_attendance(meeting, zoom.spec())
    assert report.complete
    jane = [s for s in report.segments if s.display_name == "Laptop of J."]
    assert len(jane) == 1
    assert jane[0].evidence["personal_id"] == learner.identity["personal_id"]
    assert jane[0].left_at is not None and jane[0].left_at - jane[0].joined_at == timedelta(seconds=1800)


async def test_a_crowd_launching_at_once_is_registered_in_batches(zoom: Harness,
                                                                  zoom_simulator: ZoomSimulator) -> None:
    import asyncio

    naive = ZoomProvider.from_settings(zoom_settings(zoom_simulator, batch_registration="false"))
    crowd = [Person(f"learner{n}@example.com") for n in range(150)]  # more than 3 s of single calls at 30/s
    for provider in (zoom.provider, naive):
        meeting = await provider.create_meeting(zoom.spec())
        started = time.monotonic()
        links = await asyncio.gather(*(provider.launch_link(meeting, p, Role.ATTENDEE) for p in crowd))
        elapsed = time.monotonic() - started
        personal = sum(link.personal for link in links)
        # Nobody waits much past the 3 s launch budget (the slack is for a busy machine: the simulator shares it).
        assert all(link.url for link in links) and elapsed < 20
        if provider is zoom.provider:
            assert personal == len(crowd)  # a few batch calls instead of 150 single ones
        else:
            assert personal < len(crowd)  # 30 single calls a second on Pro: the rest are held, then the form
            assert all(link.retry_after_seconds for link in links if not link.personal)
