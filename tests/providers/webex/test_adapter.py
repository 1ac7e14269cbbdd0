"""The Webex adapter against the simulator: hosts validated, meetings per part with cohosts, personal links,
facts, cancellation, and attendance from meetingParticipants (one segment per device join, per instance)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.providers.conftest import meeting_spec
from tests.providers.fixtures import fixture_json
from tests.providers.webex.conftest import COHOST, HOST, T0
from viltbridge.core.errors import InvalidInput
from viltbridge.core.models import Role
from viltbridge.core.provider import InstructorSpec, LaunchLink, MeetingRef, Person
from viltbridge.providers.http import ProviderApiError
from viltbridge.providers.webex.adapter import WebexProvider, _device_segments, session_tag
from viltbridge.providers.webex.simulator import WebexSimulator

pytestmark = pytest.mark.pure

spec = meeting_spec(HOST, COHOST)
START = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # meeting_spec's start
LEARNER = Person("learner@example.com", "Lee", "Learner")


# -- instructors --------------------------------------------------------------------------------------------------


async def test_a_licensed_host_is_provisioned_with_their_webex_id(sim: WebexSimulator,
                                                                 provider: WebexProvider) -> None:
    provisioned = await provider.provision_instructor(HOST)
    assert provisioned.provider_user_id == sim.state.person(HOST.email)["id"]  # type: ignore[index]
    assert provisioned.licensed


async def test_unknown_and_unlicensed_hosts_are_refused_with_what_to_do(sim: WebexSimulator,
                                                                        provider: WebexProvider) -> None:
    with pytest.raises(InvalidInput, match=r"not a user of this Webex organisation.*Control Hub"):
        await provider.provision_instructor(InstructorSpec("ghost@example.com", "G", "Host"))
    sim.state.seed_person("basic@example.com", licensed=False)
    with pytest.raises(InvalidInput, match=r"basic@example.com has no Webex licence.*Control Hub.*Meetings licence"):
        await provider.update_instructor(HOST.email, InstructorSpec("basic@example.com", "B", "Asic"))


async def test_only_a_host_role_on_the_connections_site_makes_an_instructor(sim: WebexSimulator,
                                                                            provider: WebexProvider) -> None:
    # The people API writes an attendee role as `site#attendee`: such a person cannot own a meeting on the site.
    sim.state.seed_person("ann@example.com", site_urls=["sim.webex.com#attendee"])
    with pytest.raises(InvalidInput, match=r"ann@example.com has no host account on the Webex site sim.webex.com"
                                           r".*#attendee.*Control Hub.*host role"):
        await provider.provision_instructor(InstructorSpec("ann@example.com", "Ann", "Attendee"))
    # A host elsewhere in the organisation is still only an attendee here.
    sim.state.seed_person("otto@example.com", site_urls=["other.webex.com", "sim.webex.com#attendee"])
    with pytest.raises(InvalidInput, match=r"otto@example.com has no host account on the Webex site sim.webex.com"):
        await provider.provision_instructor(InstructorSpec("otto@example.com", "Otto", "Elsewhere"))
    # What the refusal prevents: Webex will not schedule for them on this site.
    with pytest.raises(ProviderApiError, match="does not have a host account on the site"):
        await provider.create_meeting(spec(host=InstructorSpec("ann@example.com", "Ann", "Attendee")))
    sim.state.seed_person("hana@example.com", site_urls=["other.webex.com#attendee", "sim.webex.com"])
    assert (await provider.provision_instructor(InstructorSpec("hana@example.com", "Hana", "Host"))).licensed


async def test_sign_in_not_presence_decides_whether_an_account_can_host(sim: WebexSimulator,
                                                                        provider: WebexProvider) -> None:
    # `status` is presence: someone away or on Do Not Disturb is still a working host account.
    for presence in ("inactive", "DoNotDisturb", "OutOfOffice"):
        sim.state.seed_person(f"{presence.lower()}@example.com", status=presence)
        assert (await provider.provision_instructor(
            InstructorSpec(f"{presence.lower()}@example.com", "P", "Resence"))).licensed
    # An account whose sign-in is disabled in Control Hub cannot host, however present it looks.
    sim.state.seed_person("locked@example.com", status="active", login_enabled=False)
    with pytest.raises(InvalidInput, match=r"locked@example.com is not allowed to sign in.*Control Hub"):
        await provider.provision_instructor(InstructorSpec("locked@example.com", "L", "Ocked"))


async def test_an_inactive_instructor_is_not_looked_up(sim: WebexSimulator, provider: WebexProvider) -> None:
    sim.reset(start=T0, record_exchanges=True)
    gone = await provider.provision_instructor(replace(HOST, active=False, provider_user_id="p1"))
    assert gone.provider_user_id == "p1" and not gone.licensed
    assert sim.state.exchanges == []


# -- meetings -----------------------------------------------------------------------------------------------------


async def test_a_meeting_is_a_series_with_the_cohost_invited(sim: WebexSimulator, provider: WebexProvider) -> None:
    ref = await provider.create_meeting(spec(extended_options={"lobby": True}))
    series = sim.state.meetings[ref.meeting_id]
    assert "_I_" not in ref.meeting_id and ref.join_url == sim.state.web_link(series)
    assert series.host["emails"] == [HOST.email] and series.title == "Safety basics"
    assert (series.start, series.end) == (START, START + timedelta(hours=1))
    assert series.options["unlockedMeetingJoinSecurity"] == "allowJoinWithLobby"
    assert [(i["email"], i["coHost"]) for i in series.invitees] == [(COHOST.email, True)]


async def test_a_create_retried_after_a_lost_answer_updates_the_meeting_it_made(
        sim: WebexSimulator, provider: WebexProvider) -> None:
    first = await provider.create_meeting(spec())
    assert sim.state.meetings[first.meeting_id].integration_tags == [session_tag("1:sess-1")]
    again = await provider.create_meeting(spec(may_exist=True, title="Safety basics v2"))
    assert again.meeting_id == first.meeting_id and len(sim.state.meetings) == 1
    assert sim.state.meetings[first.meeting_id].title == "Safety basics v2"
    other = await provider.create_meeting(spec(may_exist=True, session_key="1:sess-2"))
    assert other.meeting_id != first.meeting_id and len(sim.state.meetings) == 2


def test_session_tags_fit_webexs_64_characters() -> None:
    assert session_tag("1:sess-1") == "viltbridge:1:sess-1"
    long_tag = session_tag("1:" + "x" * 100)
    assert len(long_tag) <= 64 and long_tag != session_tag("1:" + "x" * 99)


async def test_a_meeting_needs_a_host(provider: WebexProvider) -> None:
    with pytest.raises(InvalidInput, match="set default_host"):
        await provider.create_meeting(spec(host=None))


async def test_an_update_moves_the_meeting_in_place_and_invites_new_cohosts(sim: WebexSimulator,
                                                                            provider: WebexProvider) -> None:
    ref = await provider.create_meeting(spec(co_hosts=()))
    extra = InstructorSpec("cole@example.com", "Cole", "Helper")
    moved = await provider.update_meeting(ref, spec(title="Moved", starts_at=START + timedelta(days=1),
                                                    ends_at=START + timedelta(days=1, hours=2), co_hosts=(extra,)))
    assert (moved.meeting_id, moved.join_url) == (ref.meeting_id, ref.join_url)
    series = sim.state.meetings[ref.meeting_id]
    assert series.title == "Moved" and series.end - series.start == timedelta(hours=2)
    assert [(i["email"], i["coHost"]) for i in series.invitees] == [(extra.email, True)]
    again = await provider.update_meeting(moved, spec(title="Moved", co_hosts=(extra,)))
    assert len(sim.state.meetings[again.meeting_id].invitees) == 1  # not invited twice


async def test_facts_follow_webex_and_vanish_when_the_meeting_is_deleted(provider: WebexProvider) -> None:
    ref = await provider.create_meeting(spec())
    facts = await provider.meeting_facts(ref)
    assert facts is not None
    assert (facts.title, facts.starts_at, facts.ends_at) == ("Safety basics", START, START + timedelta(hours=1))
    await provider.cancel_meeting(ref)
    assert await provider.meeting_facts(ref) is None


# -- launches -----------------------------------------------------------------------------------------------------


async def test_every_role_gets_a_personal_link_for_their_own_email(sim: WebexSimulator,
                                                                   provider: WebexProvider) -> None:
    ref = await provider.create_meeting(spec())
    host = await provider.launch_link(ref, Person(HOST.email, "Tess", "Teacher"), Role.HOST)
    cohost = await provider.launch_link(ref, Person(COHOST.email, "Cole", "Helper"), Role.COHOST)
    learner = await provider.launch_link(ref, LEARNER, Role.ATTENDEE)
    for link, email, kind in ((host, HOST.email, "start"), (cohost, COHOST.email, "start"),
                              (learner, LEARNER.email, "join")):
        assert link.personal and link.identity["email"] == email
        entry = sim.state.links[link.url.rsplit("/", 1)[1]]
        assert (entry["kind"], entry["email"]) == (kind, email)
    assert sim.state.links[learner.url.rsplit("/", 1)[1]]["display_name"] == "Lee Learner"


async def test_a_still_valid_link_is_reused_and_an_expiring_one_is_not(sim: WebexSimulator,
                                                                       provider: WebexProvider) -> None:
    ref = await provider.create_meeting(spec())
    first = await provider.launch_link(ref, LEARNER, Role.ATTENDEE)
    provider._now = lambda: T0  # the simulator's frozen time
    assert await provider.launch_link(ref, LEARNER, Role.ATTENDEE, previous=first) is first
    provider._now = lambda: T0 + timedelta(minutes=56)
    fresh = await provider.launch_link(ref, LEARNER, Role.ATTENDEE, previous=first)
    assert fresh.url != first.url and len(sim.state.links) == 2
    other = await provider.launch_link(ref, Person("someone@example.com"), Role.ATTENDEE, previous=fresh)
    assert other.identity["email"] == "someone@example.com"


async def test_a_learner_still_gets_in_when_webex_fails_and_the_ledger_says_why(sim: WebexSimulator,
                                                                                provider: WebexProvider) -> None:
    ref = await provider.create_meeting(spec())
    sim.state.inject_fault(503, count=5, path="/meetings/join")
    link = await provider.launch_link(ref, LEARNER, Role.ATTENDEE)
    assert link.url == ref.join_url and not link.personal
    assert link.note is not None and "personal link failed" in link.note


# -- attendance ---------------------------------------------------------------------------------------------------


def _meeting_held(sim: WebexSimulator, ref: MeetingRef, *, end: bool = True) -> None:
    state = sim.state
    state.join(ref.meeting_id, "Tess Teacher", HOST.email, at=START)
    state.join(ref.meeting_id, "Lee Learner", LEARNER.email, at=START + timedelta(minutes=2))
    state.leave(ref.meeting_id, LEARNER.email, at=START + timedelta(minutes=20))
    state.join(ref.meeting_id, "Lee Learner", LEARNER.email, at=START + timedelta(minutes=25),
               device_type="webex_app")
    state.join(ref.meeting_id, "Dee Guest", at=START + timedelta(minutes=30))
    if end:
        state.end_meeting(ref.meeting_id, at=START + timedelta(minutes=58))


async def test_nothing_is_complete_before_the_meeting_was_held(provider: WebexProvider) -> None:
    ref = await provider.create_meeting(spec())
    report = await provider.collect_attendance(ref, spec())
    assert report.segments == () and not report.complete and report.retry_after_seconds == 900


async def test_a_running_meeting_gives_live_segments_but_is_not_complete(sim: WebexSimulator,
                                                                         provider: WebexProvider) -> None:
    ref = await provider.create_meeting(spec())
    _meeting_held(sim, ref, end=False)
    report = await provider.collect_attendance(ref, spec())
    assert not report.complete and len(report.segments) == 4
    assert sum(1 for s in report.segments if s.left_at is None) == 3


async def test_an_ended_meeting_is_complete_once_webex_lists_it(sim: WebexSimulator,
                                                                provider: WebexProvider) -> None:
    ref = await provider.create_meeting(spec())
    _meeting_held(sim, ref)
    sim.state.set_clock(START + timedelta(minutes=65))
    early = await provider.collect_attendance(ref, spec())
    assert not early.complete and early.segments == ()  # Webex lists it ~15 minutes after the end
    sim.state.set_clock(START + timedelta(minutes=75))
    report = await provider.collect_attendance(ref, spec())
    assert report.complete
    instance = sim.state.instance(ref.meeting_id).id
    assert {s.instance for s in report.segments} == {instance}
    learner = sorted((s for s in report.segments if s.email == LEARNER.email), key=lambda s: s.joined_at)
    assert [(s.joined_at, s.left_at) for s in learner] == [
        (START + timedelta(minutes=2), START + timedelta(minutes=20)),
        (START + timedelta(minutes=25), START + timedelta(minutes=58))]
    assert learner[0].participant_key == learner[1].participant_key
    assert learner[0].evidence["correlationId"] != learner[1].evidence["correlationId"]
    guest = next(s for s in report.segments if s.display_name == "Dee Guest")
    assert guest.email is None and guest.evidence["invitee"] is False


async def test_a_restarted_meeting_reports_each_instance(sim: WebexSimulator, provider: WebexProvider) -> None:
    ref = await provider.create_meeting(spec())
    sim.state.join(ref.meeting_id, "Lee Learner", LEARNER.email, at=START)
    sim.state.end_meeting(ref.meeting_id, at=START + timedelta(minutes=10))
    sim.state.join(ref.meeting_id, "Lee Learner", LEARNER.email, at=START + timedelta(minutes=12))
    sim.state.end_meeting(ref.meeting_id, at=START + timedelta(minutes=50))
    sim.state.set_clock(START + timedelta(hours=2))
    report = await provider.collect_attendance(ref, spec())
    assert report.complete and len({s.instance for s in report.segments}) == 2


def test_device_rows_of_the_documented_example_become_segments() -> None:
    rows = fixture_json("webex", "meeting_participants.json")["items"]
    instance = rows[0]["meetingId"]
    segments = [s for row in rows for s in _device_segments(row, instance)]
    # Two joins of one student, one phone guest; the row still at 1970-01-01 is not known yet and is skipped.
    assert [(s.email, s.display_name) for s in segments] == [
        ("student@example.edu", "Stu Dent"), ("student@example.edu", "Stu Dent"), (None, "Phone guest")]
    assert segments[0].left_at - segments[0].joined_at == timedelta(seconds=1130)  # type: ignore[operator]
    assert segments[2].evidence["audioType"] == "pstn" and all(s.instance == instance for s in segments)


def test_a_link_from_another_meeting_is_never_reused(provider: WebexProvider) -> None:
    ref = MeetingRef(meeting_id="a", join_url="https://x")
    previous = LaunchLink(url="https://y", personal=True,
                          identity={"meeting_id": "b", "email": LEARNER.email, "webex_role": "attendee",
                                    "expires_at": "2999-01-01T00:00:00Z"})
    assert not provider._still_valid(previous, ref, LEARNER, Role.ATTENDEE)
    assert provider._still_valid(replace(previous, identity={**previous.identity, "meeting_id": "a"}),
                                 ref, LEARNER, Role.ATTENDEE)
