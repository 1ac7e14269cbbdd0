"""The Teams adapter against the Graph simulator: meetings, co-organizers, launches, attendance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.providers.conftest import meeting_spec
from tests.providers.fixtures import fixture_json
from viltbridge.core.errors import Forbidden, InvalidInput
from viltbridge.core.models import Role
from viltbridge.core.provider import InstructorSpec, MeetingRef, Person
from viltbridge.providers.teams.adapter import TeamsProvider, _segments
from viltbridge.providers.teams.simulator import TeamsSimulator
from viltbridge.providers.teams.simulator.state import Meeting

from .conftest import COHOST, HOST

pytestmark = pytest.mark.pure

spec = meeting_spec(HOST, COHOST)


def held(sim: TeamsSimulator, meeting: MeetingRef) -> Meeting:
    """The meeting as the simulated tenant holds it."""
    return sim.state.meetings[meeting.meeting_id]


def gone(sim: TeamsSimulator, meeting: MeetingRef) -> bool:
    return meeting.meeting_id not in sim.state.meetings


# -- instructors ----------------------------------------------------------------------------------------------


async def test_instructors_are_users_of_the_tenant(sim: TeamsSimulator, provider: TeamsProvider) -> None:
    provisioned = await provider.provision_instructor(HOST)
    assert provisioned.provider_user_id == sim.state.user(HOST.email).id
    with pytest.raises(InvalidInput, match=r"stranger@example\.com is not a user in the Microsoft 365 tenant"):
        await provider.provision_instructor(InstructorSpec("stranger@example.com", "S", "T"))


async def test_an_instructor_is_found_by_mail_or_alias_when_it_is_not_their_upn(
        sim: TeamsSimulator, provider: TeamsProvider) -> None:
    # Common in real tenants: the UPN is not the mail address Cornerstone knows, and GET /users/{mail} is a 404.
    ada = sim.state.seed_user("ada.l@acmecorp.onmicrosoft.com", "Ada Lovelace", mail="ada.lovelace@acme.example",
                              aliases=["countess@acme.example"])
    for email in ("ada.lovelace@acme.example", "Countess@Acme.example", "ada.l@acmecorp.onmicrosoft.com"):
        provisioned = await provider.provision_instructor(InstructorSpec(email, "Ada", "Lovelace"))
        assert provisioned.provider_user_id == ada["id"], email
        assert provisioned.data["upn"] == "ada.l@acmecorp.onmicrosoft.com"
    # Sessions made before provisioning look the organizer up by email too.
    meeting = await provider.create_meeting(spec(host=InstructorSpec("ada.lovelace@acme.example", "Ada", "L"),
                                                 co_hosts=()))
    assert held(sim, meeting).organizer.id == ada["id"]
    with pytest.raises(InvalidInput, match=r"nobody@acme\.example is not a user in the Microsoft 365 tenant .*"
                                           r"userPrincipalName, mail address or one of their email aliases"):
        await provider.provision_instructor(InstructorSpec("nobody@acme.example", "N", "B"))


async def test_a_blocked_user_cannot_organise(sim: TeamsSimulator, provider: TeamsProvider) -> None:
    sim.state.seed_user("blocked@example.com", enabled=False)
    with pytest.raises(InvalidInput, match="blocked from signing in"):
        await provider.provision_instructor(InstructorSpec("blocked@example.com", "B", "L"))


# -- meetings -------------------------------------------------------------------------------------------------


async def test_a_meeting_is_organised_by_the_host_with_the_cohost_as_coorganizer(
        sim: TeamsSimulator, provider: TeamsProvider) -> None:
    meeting = await provider.create_meeting(spec())
    stored = held(sim, meeting)
    assert stored.organizer.upn == HOST.email and stored.subject == "Safety basics"
    assert stored.start == datetime(2026, 3, 2, 15, 0, tzinfo=UTC) and stored.end - stored.start == timedelta(hours=1)
    assert stored.attendees == [{"id": sim.state.user(COHOST.email).id, "upn": COHOST.email, "role": "coorganizer"}]
    assert stored.external_id == "1:sess-1"
    assert stored.options["allowedPresenters"] == "roleIsPresenter"
    assert meeting.data["organizer_id"] == stored.organizer.id and meeting.join_url == stored.join_url


async def test_extended_options_reach_graph(sim: TeamsSimulator, provider: TeamsProvider) -> None:
    # createOrGet documents no meeting options (the simulator ignores them there, as Graph may): they are PATCHed.
    meeting = await provider.create_meeting(spec(extended_options={"lobby_everyone": True, "meeting_chat": False,
                                                                   "record_automatically": True,
                                                                   "announce_entry_exit": True}))
    options = held(sim, meeting).options
    assert options["lobbyBypassSettings"]["scope"] == "everyone" and options["allowMeetingChat"] == "disabled"
    assert options["recordAutomatically"] is True and options["isEntryExitAnnounced"] is True
    assert options["allowedPresenters"] == "roleIsPresenter"
    methods = [method for method, path in sim.state.requests if "/onlineMeetings" in path]
    assert methods == ["POST", "PATCH"]  # createOrGet, then the options
    # An update changes them too.
    updated = await provider.update_meeting(meeting, spec(extended_options={"meeting_chat": True}))
    options = held(sim, updated).options
    assert options["lobbyBypassSettings"]["scope"] == "organization" and options["allowMeetingChat"] == "enabled"
    assert options["recordAutomatically"] is False and options["isEntryExitAnnounced"] is False


async def test_a_retried_create_finds_the_first_meeting_and_updates_it(
        sim: TeamsSimulator, provider: TeamsProvider) -> None:
    first = await provider.create_meeting(spec())
    again = await provider.create_meeting(spec(title="Safety basics v2", may_exist=True))
    assert again.meeting_id == first.meeting_id and len(sim.state.meetings) == 1
    assert held(sim, again).subject == "Safety basics v2"


async def test_an_update_keeps_the_link_and_replaces_the_coorganizers(
        sim: TeamsSimulator, provider: TeamsProvider) -> None:
    meeting = await provider.create_meeting(spec())
    later = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
    updated = await provider.update_meeting(meeting, spec(starts_at=later, ends_at=later + timedelta(hours=2),
                                                          co_hosts=()))
    stored = held(sim, updated)
    assert updated.join_url == meeting.join_url and (stored.start, stored.end) == (later, later + timedelta(hours=2))
    assert stored.attendees == []
    facts = await provider.meeting_facts(updated)
    assert facts is not None and (facts.starts_at, facts.ends_at) == (later, later + timedelta(hours=2))


async def test_a_new_primary_instructor_gets_a_new_meeting(sim: TeamsSimulator, provider: TeamsProvider) -> None:
    meeting = await provider.create_meeting(spec())
    moved = await provider.update_meeting(meeting, spec(host=COHOST, co_hosts=(HOST,)))
    assert moved.meeting_id != meeting.meeting_id and gone(sim, meeting)
    assert held(sim, moved).organizer.upn == COHOST.email


async def test_a_cancelled_meeting_is_gone(sim: TeamsSimulator, provider: TeamsProvider) -> None:
    meeting = await provider.create_meeting(spec())
    await provider.cancel_meeting(meeting)
    assert gone(sim, meeting)
    assert await provider.meeting_facts(meeting) is None
    await provider.cancel_meeting(meeting)  # already gone: fine


async def test_a_session_without_an_instructor_is_refused(provider: TeamsProvider) -> None:
    with pytest.raises(InvalidInput, match="names no instructor"):
        await provider.create_meeting(spec(host=None))


# -- launches -------------------------------------------------------------------------------------------------


async def test_everyone_gets_the_one_join_link_without_a_graph_call(
        sim: TeamsSimulator, provider: TeamsProvider) -> None:
    meeting = await provider.create_meeting(spec())
    calls = len(sim.state.requests)
    for person, role in ((HOST.email, Role.HOST), (COHOST.email, Role.COHOST), ("l@example.com", Role.ATTENDEE)):
        link = await provider.launch_link(meeting, Person(person), role)
        assert link.url == meeting.join_url and not link.personal
        assert link.identity == {"teams_role": role.value, "meeting_id": meeting.meeting_id}
    assert len(sim.state.requests) == calls
    assert provider.capabilities.per_user_links is False and provider.capabilities.webhooks is False


def test_webhooks_are_refused(provider: TeamsProvider) -> None:
    with pytest.raises(Forbidden):
        provider.read_webhook(b"{}", {}, datetime.now(UTC))
    assert provider.segments_from_events([]) == []


# -- attendance -----------------------------------------------------------------------------------------------


async def test_no_report_yet_means_incomplete(provider: TeamsProvider) -> None:
    meeting = await provider.create_meeting(spec())
    report = await provider.collect_attendance(meeting, spec())
    assert report.segments == () and not report.complete and report.retry_after_seconds == 900


async def test_attendance_of_a_restarted_meeting_with_rejoins_and_a_guest(
        sim: TeamsSimulator, provider: TeamsProvider) -> None:
    meeting = await provider.create_meeting(spec())
    state, mid = sim.state, meeting.meeting_id
    state.seed_user("stu@example.com", "Stu Dent")
    # First run: Stu joins twice, an anonymous guest once (no email).
    first = state.join(mid, upn="stu@example.com")["report_id"]
    state.join(mid, "Guest Ann", email="")
    state.advance(600)
    state.leave(mid, upn="stu@example.com")
    state.advance(60)
    state.join(mid, upn="stu@example.com")
    state.advance(300)
    state.end_meeting(mid)
    # The organizer starts the meeting again later: a second run, a second report.
    state.advance(3600)
    second = state.join(mid, upn="stu@example.com")["report_id"]
    state.advance(120)
    state.end_meeting(mid)

    report = await provider.collect_attendance(meeting, spec())
    assert report.complete and first != second
    stu = [s for s in report.segments if s.email == "stu@example.com"]
    assert [(s.instance, (s.left_at - s.joined_at).total_seconds()) for s in stu] == [  # type: ignore[operator]
        (first, 600), (first, 300), (second, 120)]
    assert {s.participant_key for s in stu} == {state.user("stu@example.com").id}
    assert stu[0].display_name == "Stu Dent" and stu[0].evidence["total_attendance_seconds"] == 900
    [guest] = [s for s in report.segments if s.display_name == "Guest Ann"]
    assert guest.email is None and guest.instance == first and guest.evidence["identity_id"] is None
    assert (guest.left_at - guest.joined_at).total_seconds() == 960  # type: ignore[operator]


async def test_attendance_follows_every_page(sim: TeamsSimulator) -> None:
    sim.reset(start=sim.state.now(), records_page_size=2)
    for person in (HOST, COHOST):
        sim.state.seed_user(person.email)
    provider = TeamsProvider.from_settings(sim.settings())
    meeting = await provider.create_meeting(spec())
    names = [f"Guest {n}" for n in range(7)]
    for name in names:
        sim.state.join(meeting.meeting_id, name)
    sim.state.advance(60)
    sim.state.end_meeting(meeting.meeting_id)
    report = await provider.collect_attendance(meeting, spec())
    assert [s.display_name for s in report.segments] == names
    await provider.aclose()


def test_the_documented_record_example_parses() -> None:
    records = fixture_json("teams", "attendance_records.json")["value"]
    segments = [segment for record in records for segment in _segments(record, "r1")]
    assert [s.email for s in segments] == ["student@contoso.edu", "student@contoso.edu", None]
    assert segments[0].joined_at == datetime(2026, 3, 2, 9, 1, 10, 100000, tzinfo=UTC)
    assert segments[2].joined_at == datetime(2026, 3, 2, 9, 5, 0, 602722, tzinfo=UTC)
    assert segments[2].participant_key == "c3d4e5f6-0000-4000-8000-000000000002"
    assert {s.instance for s in segments} == {"r1"}


def test_bad_settings_are_refused_with_the_setting_named() -> None:
    with pytest.raises(InvalidInput, match=r"teams provider settings are wrong .*client_secret: missing"):
        TeamsProvider.from_settings({"tenant_id": "t", "client_id": "c"})
