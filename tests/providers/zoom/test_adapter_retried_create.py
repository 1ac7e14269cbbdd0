"""A create retried after its answer was lost (`MeetingSpec.may_exist`) finds the meeting Zoom made instead of making
a second one: every meeting carries its session's key in a tracking field, against the simulator over HTTP."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx2
import pytest

from tests.providers.conftest import Capture, Harness, meeting_spec, zoom_settings
from tests.providers.zoom.harness import zoom_harness
from viltbridge.core.errors import ProviderFailed
from viltbridge.core.provider import InstructorSpec, MeetingSpec
from viltbridge.providers.zoom.adapter import MAX_MARKER_LOOKUPS, SESSION_MARKER, ZoomProvider
from viltbridge.providers.zoom.client import ZoomClient
from viltbridge.providers.zoom.settings import ZoomSettings
from viltbridge.providers.zoom.simulator import ZoomSimulator

pytestmark = pytest.mark.pure

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # the shared simulator's frozen clock (tests/providers/conftest.py)


class Wire(httpx2.AsyncBaseTransport):
    """The real connection to the simulator; records every request, and can lose the answer to one: the request
    reaches Zoom and takes effect, then the client times out reading the answer (as when a worker stalls)."""

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.calls: list[tuple[str, str]] = []
        self.lose: tuple[str, str] | None = None  # (method, path ending) whose next answer is lost

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        self.calls.append((request.method, request.url.path))
        if self.lose is not None and request.method == self.lose[0] and request.url.path.endswith(self.lose[1]):
            self.lose = None
            await response.aread()
            await response.aclose()
            raise httpx2.ReadTimeout("the answer never arrived", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

    def count(self, method: str, path_part: str) -> int:
        return sum(1 for m, p in self.calls if m == method and path_part in p)


@pytest.fixture
def zoom(zoom_simulator: ZoomSimulator) -> Harness:
    return zoom_harness(zoom_simulator)


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
def provider(zoom: Harness, zoom_simulator: ZoomSimulator, wire: Wire) -> ZoomProvider:
    settings = ZoomSettings.from_settings(zoom_settings(zoom_simulator))
    return ZoomProvider(settings, ZoomClient(settings, transport=wire))


def _meetings(sim: ZoomSimulator, session_key: str | None = None) -> list[dict[str, object]]:
    """The simulator's live meetings, those marked with `session_key` when given."""
    live = [m for m in sim.state.snapshot()["meetings"] if not m["deleted"]]
    if session_key is None:
        return live
    return [m for m in live if {"field": SESSION_MARKER, "value": session_key} in m["tracking_fields"]]


async def test_every_created_meeting_carries_its_session_key(zoom: Harness, provider: ZoomProvider) -> None:
    meeting = await provider.create_meeting(zoom.spec())
    current = await provider.client.get_meeting(meeting.meeting_id)
    assert current["tracking_fields"] == [{"field": SESSION_MARKER, "value": "1:sess-1", "visible": True}]
    assert "1:sess-1" not in current["agenda"] and "1:sess-1" not in current["topic"]  # nothing learners see


async def test_a_create_whose_answer_was_lost_is_found_when_retried(zoom: Harness, zoom_simulator: ZoomSimulator,
                                                                     provider: ZoomProvider, wire: Wire) -> None:
    wire.lose = ("POST", "/meetings")
    with pytest.raises(ProviderFailed):
        await provider.create_meeting(zoom.spec())
    assert len(_meetings(zoom_simulator, "1:sess-1")) == 1  # Zoom made it; viltbridge never learned its id
    retried = await provider.create_meeting(zoom.spec(may_exist=True))
    [made] = _meetings(zoom_simulator)
    assert retried.meeting_id == str(made["id"]) and retried.join_url
    assert wire.count("POST", "/meetings") == 1  # found, not created again
    again = await provider.create_meeting(zoom.spec(may_exist=True))  # the retry's own answer lost, say
    assert again.meeting_id == retried.meeting_id and len(_meetings(zoom_simulator)) == 1


async def test_a_create_repeated_with_may_exist_returns_the_same_meeting(zoom: Harness,
                                                                         zoom_simulator: ZoomSimulator,
                                                                         provider: ZoomProvider) -> None:
    first = await provider.create_meeting(zoom.spec())
    second = await provider.create_meeting(zoom.spec(may_exist=True))
    assert (second.meeting_id, second.join_url) == (first.meeting_id, first.join_url)
    assert second.data["registration"] and second.data["host_email"] == zoom.host.email
    assert len(_meetings(zoom_simulator)) == 1


async def test_the_found_meeting_is_updated_to_the_session_as_it_is_now(zoom: Harness,
                                                                        zoom_simulator: ZoomSimulator,
                                                                        provider: ZoomProvider, wire: Wire) -> None:
    """The LMS may edit the session between the lost create and its retry: the meeting is still found (same
    start), and brought up to date in place."""
    wire.lose = ("POST", "/meetings")
    with pytest.raises(ProviderFailed):
        await provider.create_meeting(zoom.spec())
    edited = zoom.spec(title="Safety basics (room change)", may_exist=True)
    found = await provider.create_meeting(edited)
    current = await provider.client.get_meeting(found.meeting_id)
    assert current["topic"] == "Safety basics (room change)" and len(_meetings(zoom_simulator)) == 1
    assert wire.count("PATCH", f"/meetings/{found.meeting_id}") == 1


async def test_without_may_exist_nothing_is_looked_up(zoom: Harness, zoom_simulator: ZoomSimulator,
                                                      provider: ZoomProvider, wire: Wire) -> None:
    first = await provider.create_meeting(zoom.spec())
    second = await provider.create_meeting(zoom.spec())
    assert first.meeting_id != second.meeting_id and len(_meetings(zoom_simulator, "1:sess-1")) == 2
    assert wire.calls.count(("POST", f"/v2/users/{zoom.host.email}/meetings")) == 2
    assert wire.count("GET", "/meetings") == 0 and wire.count("PATCH", "/meetings") == 0


async def test_another_sessions_meeting_at_the_same_topic_and_time_is_never_taken(
        zoom: Harness, zoom_simulator: ZoomSimulator, provider: ZoomProvider) -> None:
    other = await provider.create_meeting(zoom.spec(session_key="1:sess-2"))
    by_hand = await provider.client.create_meeting(zoom.host.email, provider._body(zoom.spec()))  # no mark
    mine = await provider.create_meeting(zoom.spec(may_exist=True))
    assert mine.meeting_id not in (other.meeting_id, str(by_hand["id"]))
    assert len(_meetings(zoom_simulator)) == 3 and len(_meetings(zoom_simulator, "1:sess-1")) == 1
    untouched = await provider.client.get_meeting(other.meeting_id)
    assert untouched["tracking_fields"][0]["value"] == "1:sess-2"


async def test_the_lookup_reads_a_handful_of_meetings_at_most(zoom: Harness, zoom_simulator: ZoomSimulator,
                                                              provider: ZoomProvider, wire: Wire) -> None:
    """A host with many meetings at the same topic and time (none of them this session's): a bounded number of
    GETs, then a new meeting."""
    for n in range(MAX_MARKER_LOOKUPS + 3):
        await provider.create_meeting(zoom.spec(session_key=f"1:other-{n}"))
    wire.calls.clear()
    made = await provider.create_meeting(zoom.spec(may_exist=True))
    assert wire.count("GET", "/meetings/") == MAX_MARKER_LOOKUPS
    assert wire.count("GET", f"/users/{zoom.host.email}/meetings") == 1
    assert len(_meetings(zoom_simulator, "1:sess-1")) == 1 and made.meeting_id


async def test_a_meeting_made_far_ahead_is_still_found(zoom: Harness, zoom_simulator: ZoomSimulator,
                                                       provider: ZoomProvider) -> None:
    """Zoom's `upcoming` listing stops six months ahead; the lookup lists `scheduled` meetings, which do not."""
    spec: MeetingSpec = zoom.spec()
    later = replace(spec, starts_at=spec.starts_at + timedelta(days=300), ends_at=spec.ends_at + timedelta(days=300))
    first = await provider.create_meeting(later)
    assert (await provider.create_meeting(replace(later, may_exist=True))).meeting_id == first.meeting_id


async def test_an_account_without_the_tracking_field_gets_a_warning_and_no_wrong_match(
        zoom_simulator: ZoomSimulator) -> None:
    """Zoom keeps tracking fields the account defines only. Without the mark nothing can be found, so a retry
    makes a new meeting (as before), and the admin is told once what to set up."""
    zoom_simulator.reset(start=T0, tracking_fields={})  # the account defines no tracking field
    host = InstructorSpec("tess@example.com", "Tess", "Teacher")
    zoom_simulator.state.seed_user(host.email)
    spec = meeting_spec(host, host)
    provider = ZoomProvider.from_settings(zoom_settings(zoom_simulator))
    capture = Capture()
    logging.getLogger("viltbridge.providers.zoom").addHandler(capture)
    try:
        first = await provider.create_meeting(spec(co_hosts=()))
        second = await provider.create_meeting(spec(co_hosts=(), may_exist=True))
        await provider.create_meeting(spec(co_hosts=(), session_key="1:sess-2"))
    finally:
        logging.getLogger("viltbridge.providers.zoom").removeHandler(capture)
        await provider.aclose()
    assert first.meeting_id != second.meeting_id
    assert sum(SESSION_MARKER in line and "tracking field" in line for line in capture.lines) == 1
