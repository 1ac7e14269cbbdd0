"""The calendar-event route (`calendar_events: true`): Outlook events with a Teams meeting, docs/providers.md §2.4."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx2
import pytest

from tests.providers.conftest import meeting_spec
from viltbridge.providers.http import ProviderApiError
from viltbridge.providers.teams.adapter import TeamsProvider
from viltbridge.providers.teams.simulator import TeamsSimulator

from .conftest import COHOST, HOST

pytestmark = pytest.mark.pure

spec = meeting_spec(HOST, COHOST)


@pytest.fixture
def calendar(sim: TeamsSimulator) -> TeamsProvider:
    return TeamsProvider.from_settings(sim.settings(calendar_events=True))


async def test_a_session_becomes_an_event_inviting_the_cohost(sim: TeamsSimulator, calendar: TeamsProvider) -> None:
    meeting = await calendar.create_meeting(spec())
    event = sim.state.events[meeting.meeting_id]
    assert meeting.data["route"] == "event" and meeting.join_url == event.meeting.join_url
    assert event.organizer.upn == HOST.email and event.body == {"contentType": "text", "content": "Onboarding"}
    assert [a["emailAddress"]["address"] for a in event.attendees] == [COHOST.email]
    assert event.start == datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


async def test_a_repeated_create_gets_the_same_event(sim: TeamsSimulator, calendar: TeamsProvider) -> None:
    first = await calendar.create_meeting(spec())
    again = await calendar.create_meeting(spec(may_exist=True))
    assert again.meeting_id == first.meeting_id and len(sim.state.events) == 1


async def test_an_event_moves_with_its_meeting_and_keeps_the_link(sim: TeamsSimulator,
                                                                  calendar: TeamsProvider) -> None:
    meeting = await calendar.create_meeting(spec())
    later = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
    moved = await calendar.update_meeting(meeting, spec(title="Moved", starts_at=later,
                                                        ends_at=later + timedelta(hours=1)))
    assert moved.join_url == meeting.join_url
    facts = await calendar.meeting_facts(moved)
    assert facts is not None and (facts.title, facts.starts_at) == ("Moved", later)
    assert sim.state.events[moved.meeting_id].meeting.start == later


async def test_a_cancelled_event_takes_its_meeting_along(sim: TeamsSimulator, calendar: TeamsProvider) -> None:
    meeting = await calendar.create_meeting(spec())
    await calendar.cancel_meeting(meeting)
    await calendar.cancel_meeting(meeting)
    assert sim.state.events == {} and sim.state.meetings == {}
    assert await calendar.meeting_facts(meeting) is None


async def test_attendance_comes_through_the_events_online_meeting(sim: TeamsSimulator,
                                                                 calendar: TeamsProvider) -> None:
    meeting = await calendar.create_meeting(spec())
    online_id = sim.state.events[meeting.meeting_id].meeting.id
    sim.state.join(online_id, upn=COHOST.email)
    sim.state.advance(900)
    report_id = sim.state.end_meeting(online_id)["report_id"]
    report = await calendar.collect_attendance(meeting, spec())
    [segment] = report.segments
    assert (segment.email, segment.instance, report.complete) == (COHOST.email, report_id, True)
    assert segment.left_at is not None and (segment.left_at - segment.joined_at).total_seconds() == 900


async def test_an_event_needs_no_access_policy_but_its_attendance_does(sim: TeamsSimulator,
                                                                       calendar: TeamsProvider) -> None:
    sim.state.set_policy(HOST.email, granted=False)
    meeting = await calendar.create_meeting(spec())  # Exchange permissions, not the Teams policy
    with pytest.raises(ProviderApiError, match="Grant-CsApplicationAccessPolicy -PolicyName viltbridge"):
        await calendar.collect_attendance(meeting, spec())


def test_the_join_url_filter_finds_the_meeting(sim: TeamsSimulator, api: httpx2.Client) -> None:
    event = api.post(f"/users/{HOST.email}/events", json={
        "subject": "Algebra", "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-03-02T10:00:00", "timeZone": "UTC"}, "isOnlineMeeting": True,
        "onlineMeetingProvider": "teamsForBusiness"})
    assert event.status_code == 201
    # Event times: seven fractional digits and no Z (the timeZone says UTC).
    assert re.fullmatch(r"2026-03-02T09:00:00\.\d{7}", event.json()["start"]["dateTime"])
    join_url = event.json()["onlineMeeting"]["joinUrl"]
    found = api.get(f"/users/{HOST.email}/onlineMeetings", params={"$filter": f"JoinWebUrl eq '{join_url}'"})
    assert found.status_code == 200 and [m["joinWebUrl"] for m in found.json()["value"]] == [join_url]
    other = api.get(f"/users/{HOST.email}/onlineMeetings", params={"$filter": "JoinWebUrl eq 'https://x/y'"})
    assert other.json()["value"] == []
