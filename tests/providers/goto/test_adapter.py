"""The GoTo Training adapter's own behaviour (the shared acceptance suite covers the protocol): organizers as
instructors, co-organizers, the session's mark and a retried create, updates in place without notifications,
start and registrant links (a 409 reuses the registration), and attendance from reports with several join periods,
no-shows and the completeness rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest

from tests.providers.conftest import meeting_spec
from tests.providers.fixtures import fixture_bytes, fixture_json
from tests.providers.goto.conftest import COHOST, COHOST_KEY, HOST, T0
from viltbridge.core.errors import Forbidden, InvalidInput
from viltbridge.core.models import Role
from viltbridge.core.provider import InstructorSpec, MeetingRef, Person
from viltbridge.providers.goto.adapter import REPORT_SETTLE, GotoProvider, session_mark
from viltbridge.providers.goto.client import GotoClient
from viltbridge.providers.goto.settings import GotoSettings
from viltbridge.providers.goto.simulator import GotoSimulator
from viltbridge.providers.http import RateLimits, new_breaker

pytestmark = pytest.mark.pure

spec = meeting_spec(HOST, COHOST)
START = spec().starts_at
LEARNER = Person("jane@example.com", "Jane", "Doe")


def adapter(sim: GotoSimulator, *, now: Callable[[], datetime] | None = None, **settings: Any) -> GotoProvider:
    parsed = GotoSettings.from_settings(sim.settings(**settings))
    client = GotoClient(parsed, breaker=new_breaker("goto-adapter-test"), limits=RateLimits())
    return GotoProvider(parsed, client, clock=now)


# -- instructors ----------------------------------------------------------------------------------------------------


async def test_organizers_of_the_account_can_teach(sim: GotoSimulator, provider: GotoProvider) -> None:
    organizer = await provider.provision_instructor(HOST)
    cohost = await provider.provision_instructor(COHOST)
    assert organizer.provider_user_id == sim.config.organizer_key and organizer.data["goto_role"] == "organizer"
    assert cohost.provider_user_id == COHOST_KEY and cohost.data["goto_role"] == "co-organizer"
    with pytest.raises(InvalidInput, match=r"nobody@example\.com is not a GoTo Training organizer on this GoTo "
                                           r"account .*give them a GoTo Training licence"):
        await provider.provision_instructor(InstructorSpec("nobody@example.com", "No", "Body"))
    inactive = await provider.provision_instructor(InstructorSpec("nobody@example.com", "No", "Body", active=False))
    assert not inactive.licensed


async def test_a_single_user_account_has_one_organizer(goto_simulator: GotoSimulator) -> None:
    goto_simulator.reset(start=T0, multi_user=False)
    provider = adapter(goto_simulator)
    assert (await provider.provision_instructor(HOST)).provider_user_id == goto_simulator.config.organizer_key
    with pytest.raises(InvalidInput, match=r"its account has one organizer \(tess@example\.com\) as far as"):
        await provider.provision_instructor(COHOST)
    await provider.aclose()


async def test_organizers_come_from_the_admin_api_user_listing(goto_simulator: GotoSimulator) -> None:
    sim = goto_simulator
    sim.reset(start=T0, record_exchanges=True)
    sim.state.seed_organizer(COHOST.email, "Cole", "Helper", organizer_key=COHOST_KEY)
    sim.state.seed_account_user("meg@example.com", products=("G2M",))  # on the account, but no GoTo Training
    provider = adapter(sim)
    assert (await provider.provision_instructor(COHOST)).data["goto_role"] == "co-organizer"
    with pytest.raises(InvalidInput, match=r"meg@example\.com is not a GoTo Training organizer"):
        await provider.provision_instructor(InstructorSpec("meg@example.com", "Meg", "Meeting"))
    routes = [x["route"] for x in sim.state.exchanges]
    assert "/accounts/{accountKey}/users" in routes and "/accounts/{accountKey}/organizers" not in routes
    [listing] = [item for item in provider.health() if item.name == "organizer listing"]
    assert listing.ok and "Admin API" in listing.detail
    await provider.aclose()


async def test_without_the_admin_api_the_deprecated_listing_is_used_and_health_says_so(
        goto_simulator: GotoSimulator) -> None:
    sim = goto_simulator
    sim.reset(start=T0, admin_api=False)
    sim.state.seed_organizer(COHOST.email, "Cole", "Helper", organizer_key=COHOST_KEY)
    provider = adapter(sim)
    assert (await provider.provision_instructor(COHOST)).provider_user_id == COHOST_KEY
    [listing] = [item for item in provider.health() if item.name == "organizer listing"]
    assert "deprecated GET /accounts/{accountKey}/organizers" in listing.detail
    assert "account admin authorise" in listing.detail
    await provider.aclose()


# -- trainings ------------------------------------------------------------------------------------------------------


async def test_a_training_per_part_with_its_mark_and_co_organizer(sim: GotoSimulator,
                                                                  provider: GotoProvider) -> None:
    ref = await provider.create_meeting(spec(title="T" * 150, description="Onboarding"))
    training = sim.state.trainings[ref.meeting_id]
    assert training.name == "T" * 100  # GoTo's limit
    assert training.description == "Onboarding\n\n[viltbridge:1:sess-1]"
    assert training.times == [(START, START + timedelta(hours=1))] and training.time_zone == "America/New_York"
    assert training.co_organizers == [COHOST_KEY]
    assert not training.disable_web_registration and training.disable_confirmation_email
    assert ref.join_url == f"{sim.base_url}/r/{ref.meeting_id}"
    assert ref.data["co_organizers"] == {COHOST.email: COHOST_KEY}


async def test_an_unknown_zone_falls_back_to_the_connections(sim: GotoSimulator) -> None:
    provider = adapter(sim, time_zone="Europe/Paris")
    ref = await provider.create_meeting(spec(zone="Not/AZone"))
    assert sim.state.trainings[ref.meeting_id].time_zone == "Europe/Paris"
    await provider.aclose()


async def test_a_co_instructor_who_is_no_organizer_is_said_so_and_joins_as_attendee(
        sim: GotoSimulator, provider: GotoProvider, caplog: pytest.LogCaptureFixture) -> None:
    stranger = InstructorSpec("sam@example.com", "Sam", "Smith")
    ref = await provider.create_meeting(spec(co_hosts=(stranger,)))
    assert ref.data["not_co_organizers"] == ["sam@example.com"]
    assert sim.state.trainings[ref.meeting_id].co_organizers == []
    assert "sam@example.com of session 1:sess-1 are not organizers on the GoTo account" in caplog.text
    link = await provider.launch_link(ref, Person(stranger.email, "Sam", "Smith"), Role.COHOST)
    assert link.personal and "/join/training/" in link.url
    assert link.note is not None and "not an organizer on the GoTo account" in link.note


async def test_updates_are_in_place_and_notify_nobody(goto_simulator: GotoSimulator) -> None:
    sim = goto_simulator
    sim.reset(start=T0, record_exchanges=True)
    sim.state.seed_organizer(COHOST.email, "Cole", "Helper", organizer_key=COHOST_KEY)
    provider = adapter(sim)
    ref = await provider.create_meeting(spec(co_hosts=()))
    later = START + timedelta(days=1)
    edited = await provider.update_meeting(ref, spec(title="Moved", starts_at=later,
                                                     ends_at=later + timedelta(minutes=90)))
    assert edited.meeting_id == ref.meeting_id and edited.join_url == ref.join_url
    training = sim.state.trainings[ref.meeting_id]
    assert training.name == "Moved" and training.times == [(later, later + timedelta(minutes=90))]
    assert training.description.endswith(session_mark("1:sess-1"))
    assert training.co_organizers == [COHOST_KEY]  # Cole was added as co-organizer by the edit
    [times] = [x for x in sim.state.exchanges if x["route"].endswith("/times")]
    assert times["body"] == {"notifiedRegistrants": 0, "notifiedTrainers": 0}
    await provider.update_meeting(edited, spec(title="Moved", starts_at=later,
                                               ends_at=later + timedelta(minutes=90)))
    puts = [x for x in sim.state.exchanges if x["method"] == "PUT" and x["route"].endswith("/organizers")]
    assert len(puts) == 1  # unchanged since: no second call
    await provider.aclose()


async def test_a_retried_create_finds_the_training_its_lost_answer_made(sim: GotoSimulator,
                                                                        provider: GotoProvider) -> None:
    first = await provider.create_meeting(spec())
    again = await provider.create_meeting(spec(title="Renamed meanwhile", may_exist=True))
    assert again.meeting_id == first.meeting_id and again.join_url == first.join_url
    assert len(sim.state.trainings) == 1 and sim.state.trainings[first.meeting_id].name == "Renamed meanwhile"
    other = await provider.create_meeting(spec(session_key="1:sess-2", may_exist=True))  # nothing to find
    assert other.meeting_id != first.meeting_id and len(sim.state.trainings) == 2


async def test_facts_and_cancellation(sim: GotoSimulator, provider: GotoProvider) -> None:
    ref = await provider.create_meeting(spec())
    facts = await provider.meeting_facts(ref)
    assert facts is not None and facts.title == "Safety basics"
    assert (facts.starts_at, facts.ends_at) == (START, START + timedelta(hours=1))
    await provider.cancel_meeting(ref)
    assert sim.state.trainings[ref.meeting_id].deleted
    assert await provider.meeting_facts(ref) is None
    await provider.cancel_meeting(ref)  # 404: cancelled enough


# -- launches -------------------------------------------------------------------------------------------------------


async def test_instructors_get_a_fresh_start_link_on_every_click(provider: GotoProvider) -> None:
    ref = await provider.create_meeting(spec())
    first = await provider.launch_link(ref, Person(HOST.email), Role.HOST)
    second = await provider.launch_link(ref, Person(HOST.email), Role.HOST)
    cohost = await provider.launch_link(ref, Person(COHOST.email), Role.COHOST)
    assert "/start/" in first.url and first.url != second.url and not first.personal
    assert "/start/" in cohost.url and cohost.identity["goto_role"] == "co-organizer"
    # The connection's organizer listed as a co-instructor (someone else leads) still starts the training.
    led_by_cole = await provider.create_meeting(spec(session_key="1:sess-2", host=COHOST, co_hosts=(HOST,)))
    organizer = await provider.launch_link(led_by_cole, Person(HOST.email), Role.COHOST)
    assert "/start/" in organizer.url


async def test_a_learner_gets_a_personal_registrant_link(sim: GotoSimulator, provider: GotoProvider) -> None:
    ref = await provider.create_meeting(spec())
    link = await provider.launch_link(ref, LEARNER, Role.ATTENDEE)
    [registrant] = sim.state.trainings[ref.meeting_id].registrants.values()
    assert link.personal and link.url == sim.state.join_url(sim.state.trainings[ref.meeting_id], registrant)
    assert link.identity["personal_id"] == registrant.key and link.identity["email"] == "jane@example.com"
    assert (registrant.given_name, registrant.surname) == ("Jane", "Doe")
    again = await provider.launch_link(ref, LEARNER, Role.ATTENDEE, previous=link)
    assert again is link and len(sim.state.trainings[ref.meeting_id].registrants) == 1


async def test_a_learner_already_registered_reuses_the_registration(sim: GotoSimulator,
                                                                    provider: GotoProvider) -> None:
    ref = await provider.create_meeting(spec())
    earlier = await provider.client.register(ref.meeting_id, "Jane@Example.com", "Jane", "Doe")
    link = await provider.launch_link(ref, LEARNER, Role.ATTENDEE)  # GoTo answers 409: the registrant is looked up
    assert link.personal and link.identity["personal_id"] == earlier["registrantKey"]
    assert link.url == earlier["joinUrl"] and len(sim.state.trainings[ref.meeting_id].registrants) == 1


async def test_when_registration_fails_the_learner_gets_gotos_registration_page(sim: GotoSimulator,
                                                                                provider: GotoProvider) -> None:
    ref = await provider.create_meeting(spec())
    sim.state.inject_fault(503, count=10, path="/registrants")
    link = await provider.launch_link(ref, LEARNER, Role.ATTENDEE)
    assert not link.personal and link.url == ref.join_url and link.retry_after_seconds
    assert link.note is not None and link.note.startswith("registration failed: GoTo Training")


# -- attendance -----------------------------------------------------------------------------------------------------


async def _held_class(sim: GotoSimulator, provider: GotoProvider) -> tuple[MeetingRef, dict[str, str]]:
    ref = await provider.create_meeting(spec())
    keys = {}
    for person in (LEARNER, Person("bob@example.com", "Bob", "B"), Person("kim@example.com", "Kim", "K")):
        keys[person.email] = (await provider.launch_link(ref, person, Role.ATTENDEE)).identity["personal_id"]
    state, key = sim.state, ref.meeting_id
    state.join(key, HOST.email, at=START)
    state.join(key, "jane@example.com", at=START + timedelta(minutes=1))
    state.leave(key, "jane@example.com", at=START + timedelta(minutes=20))
    state.join(key, "jane@example.com", at=START + timedelta(minutes=25))  # back after a dropped connection
    state.join(key, "bob@example.com", at=START + timedelta(minutes=2))
    state.leave(key, "bob@example.com", at=START + timedelta(minutes=12))
    state.join(key, "guest@example.com", "Gus", "Guest", at=START + timedelta(minutes=3))  # not a registrant
    state.end_session(key, at=START + timedelta(minutes=60))
    return ref, keys


async def test_the_report_gives_one_segment_per_join_period(sim: GotoSimulator) -> None:
    now = [START + timedelta(hours=2)]
    provider = adapter(sim, now=lambda: now[0])
    ref, keys = await _held_class(sim, provider)
    sim.state.set_clock(START + timedelta(minutes=75))
    report = await provider.collect_attendance(ref, spec())
    assert report.complete and report.retry_after_seconds is None
    by_email: dict[str, list[Any]] = {}
    for segment in report.segments:
        by_email.setdefault(segment.email or "", []).append(segment)
    assert set(by_email) == {"jane@example.com", "bob@example.com", "guest@example.com"}  # Kim did not come
    jane = by_email["jane@example.com"]
    assert [(s.joined_at, s.left_at) for s in jane] == [
        (START + timedelta(minutes=1), START + timedelta(minutes=20)),
        (START + timedelta(minutes=25), START + timedelta(minutes=60))]
    assert {s.evidence["personal_id"] for s in jane} == {keys["jane@example.com"]}
    assert jane[0].participant_key == keys["jane@example.com"] and jane[0].display_name == "Jane Doe"
    assert jane[0].instance == sim.state.trainings[ref.meeting_id].sessions[0].key
    assert by_email["bob@example.com"][0].evidence["personal_id"] == keys["bob@example.com"]
    assert "personal_id" not in by_email["guest@example.com"][0].evidence  # matched by email, if at all
    await provider.aclose()


async def test_attendance_is_complete_only_after_the_report_has_settled(sim: GotoSimulator) -> None:
    now = [START + timedelta(minutes=30)]
    provider = adapter(sim, now=lambda: now[0])
    ref, _ = await _held_class(sim, provider)
    early = await provider.collect_attendance(ref, spec())
    assert early.segments == () and not early.complete and early.retry_after_seconds == 45 * 60
    sim.state.set_clock(START + timedelta(minutes=70))  # GoTo reports the session now
    now[0] = START + timedelta(minutes=75)
    partial = await provider.collect_attendance(ref, spec())
    assert partial.segments and not partial.complete
    assert partial.retry_after_seconds == int((spec().ends_at + REPORT_SETTLE - now[0]).total_seconds())
    now[0] = spec().ends_at + REPORT_SETTLE
    final = await provider.collect_attendance(ref, spec())
    assert final.complete and final.segments == partial.segments
    await provider.aclose()


async def test_gotos_documented_report_payloads_are_read(sim: GotoSimulator) -> None:
    """The fixtures (shapes from GoTo's reference) through the adapter: the report's lowercased email still finds
    Jane's registrant key; Kim, a no-show, gives nothing."""
    payloads = {"/trainings/8178251350558465292/registrants": "registrants.json",
                "/reports/organizers/3000000000000000001/trainings/8178251350558465292": "report_sessions.json",
                "/sessions/9024345791022440449/attendees": "session_attendees.json"}

    def answer(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/oauth/token"):
            return httpx2.Response(200, json=fixture_json("goto", "token_response.json"))
        for suffix, name in payloads.items():
            if request.url.path.endswith(suffix):
                return httpx2.Response(200, content=fixture_bytes("goto", name))
        return httpx2.Response(404, json={"int_err_code": "NotFound", "msg": "no"})

    settings = GotoSettings.from_settings({"client_id": "c", "client_secret": "s", "refresh_token": "r",
                                           "organizer_key": "3000000000000000001",
                                           "account_key": "4000000000000000001"})
    client = GotoClient(settings, transport=httpx2.MockTransport(answer), breaker=new_breaker("goto-fixtures"),
                        limits=RateLimits())
    provider = GotoProvider(settings, client, clock=lambda: datetime(2026, 3, 3, tzinfo=UTC))
    ref = MeetingRef("8178251350558465292", "https://attendee.gototraining.com/r/8178251350558465292")
    part = replace(spec(), starts_at=datetime(2026, 3, 2, 15, tzinfo=UTC), ends_at=datetime(2026, 3, 2, 16, tzinfo=UTC))
    report = await provider.collect_attendance(ref, part)
    assert report.complete
    assert [(s.email, s.evidence.get("personal_id"), s.evidence["time_in_part_minutes"]) for s in report.segments] == [
        ("jane.doe@example.com", "5646167387902096129", 28), ("jane.doe@example.com", "5646167387902096129", 24),
        ("bob@example.com", "5646167387902096130", 10)]
    assert {s.instance for s in report.segments} == {"9024345791022440449"}
    await provider.aclose()


def test_webhooks_are_refused(provider: GotoProvider) -> None:
    with pytest.raises(Forbidden, match="take no webhooks"):
        provider.read_webhook(b"{}", {}, T0)
    assert provider.segments_from_events([]) == []
