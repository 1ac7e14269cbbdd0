"""ZoomClient against the Zoom simulator over real HTTP: settings, S2S OAuth token caching and refresh, retries on
429/5xx/timeouts, the circuit breaker, client-side plan and per-host limits, error messages, pagination (including
an expired page token), UUID encoding and redacted debug logs. The simulator's clock is frozen at T0 unless a test
says otherwise."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.providers.conftest import Capture
from tests.providers.zoom.conftest import TEACHER
from viltbridge.core.errors import InvalidInput
from viltbridge.observability import debug_requested
from viltbridge.providers.http import (
    BULK,
    Budget,
    CircuitOpen,
    ProviderApiError,
    ProviderUnreachable,
    RateLimitExceeded,
    RateLimits,
    new_breaker,
)
from viltbridge.providers.zoom.client import ZoomClient, meeting_path_id
from viltbridge.providers.zoom.settings import ZoomSettings
from viltbridge.providers.zoom.simulator import ZoomSimulator

pytestmark = pytest.mark.pure

MEETING = {"topic": "Algebra 101", "type": 2, "start_time": "2026-03-02T10:00:00Z", "duration": 60,
           "timezone": "Europe/Berlin", "settings": {"approval_type": 0}}


def settings_for(sim: ZoomSimulator, **changes: Any) -> ZoomSettings:
    values: dict[str, Any] = {
        "account_id": sim.config.account_id, "client_id": sim.config.client_id,
        "client_secret": sim.config.client_secret, "webhook_secret_token": sim.config.webhook_secret_token,
        "api_base_url": sim.api_base_url, "oauth_token_url": sim.oauth_token_url, "plan": sim.config.plan,
    }
    return ZoomSettings.from_settings({**values, **changes})


def make_client(sim: ZoomSimulator, settings: ZoomSettings | None = None, **kwargs: Any) -> ZoomClient:
    kwargs.setdefault("limits", RateLimits())  # fresh buckets and breaker: tests share the simulator's account id
    kwargs.setdefault("breaker", new_breaker("test"))
    return ZoomClient(settings or settings_for(sim), **kwargs)


@pytest.fixture
async def zoom(sim: ZoomSimulator) -> AsyncIterator[ZoomClient]:
    client = make_client(sim)
    yield client
    await client.aclose()


def reset(sim: ZoomSimulator, **changes: Any) -> None:
    """Another simulator configuration (frozen at T0 unless `start` says otherwise), with the teacher."""
    changes.setdefault("start", sim.state.clock.now())
    sim.reset(**changes)
    sim.state.seed_user(TEACHER, first_name="Tess", last_name="Teacher")


def statuses(sim: ZoomSimulator, route: str | None = None) -> list[int]:
    return [e["status"] for e in sim.state.exchanges if route is None or e["route"] == route]


# -- settings ---------------------------------------------------------------------------------------------------


def test_settings_errors_are_readable() -> None:
    with pytest.raises(InvalidInput) as caught:
        ZoomSettings.from_settings({"account_id": " ", "client_secret": "s", "webhook_secret_token": "w",
                                    "plan": "gold", "api_base_url": "api.zoom.us", "colour": "red"})
    message = caught.value.message
    assert message.startswith("zoom provider settings are wrong (")
    for part in ("account_id: must not be empty", "client_id: missing (required)",
                 "api_base_url: must be an http(s) URL", "plan: Input should be 'free', 'pro' or 'business'",
                 "colour: unknown setting",
                 "Known settings: account_id, client_id, client_secret, webhook_secret_token, api_base_url, "
                 "oauth_token_url, plan, host_policy, default_host, batch_registration, learner_links, "
                 "deactivated_hosts."):
        assert part in message


def test_settings_defaults_and_hidden_secrets() -> None:
    settings = ZoomSettings.from_settings({"account_id": "A", "client_id": "C", "client_secret": "very-secret",
                                           "webhook_secret_token": "hook-secret"})
    assert (settings.api_base_url, settings.oauth_token_url) == ("https://api.zoom.us/v2",
                                                                 "https://zoom.us/oauth/token")
    assert (settings.plan, settings.host_policy) == ("pro", "existing")
    assert "very-secret" not in repr(settings) and "hook-secret" not in repr(settings)


def test_uuid_path_encoding() -> None:
    assert meeting_path_id(85746065123) == "85746065123"
    assert meeting_path_id("aDYlohsHRtCd4ii1uC2+hA==") == "aDYlohsHRtCd4ii1uC2%2BhA%3D%3D"  # once
    assert meeting_path_id("/ajXp112QmuoKj4854875==") == "%252FajXp112QmuoKj4854875%253D%253D"
    assert meeting_path_id("ab//cd") == "ab%252F%252Fcd"  # twice: starts with / or holds //


# -- tokens -----------------------------------------------------------------------------------------------------


async def test_concurrent_calls_share_one_token_request(sim: ZoomSimulator, zoom: ZoomClient) -> None:
    users = await asyncio.gather(*[zoom.get_user(TEACHER) for _ in range(20)])
    assert {user["email"] for user in users} == {TEACHER}
    await zoom.get_user(TEACHER)
    assert len(sim.state.tokens) == 1  # the simulator issued one token for 21 calls
    assert zoom.tokens.fetches == 1


async def test_token_expiry_on_zoom_is_refreshed_transparently(sim: ZoomSimulator, zoom: ZoomClient) -> None:
    await zoom.get_user(TEACHER)
    sim.state.advance_clock(3600)  # Zoom's token died; the client's clock does not know yet
    users = await asyncio.gather(*[zoom.get_user(TEACHER) for _ in range(5)])
    assert len(users) == 5
    assert len(sim.state.tokens) == 2  # five 401s, one new token
    sim.state.revoke_tokens()  # the app was deactivated and reactivated
    await zoom.get_user(TEACHER)
    assert len(sim.state.tokens) == 1


async def test_token_is_refreshed_early_by_the_client_clock(sim: ZoomSimulator) -> None:
    reset(sim, record_exchanges=True)
    now = [1000.0]
    client = make_client(sim, clock=lambda: now[0])
    try:
        await client.get_user(TEACHER)
        now[0] += 3599 - 299  # within 5 minutes of expiry: refreshed before use, no 401 seen
        sim.state.advance_clock(3599 - 299)
        await client.get_user(TEACHER)
    finally:
        await client.aclose()
    assert client.tokens.fetches == 2
    assert statuses(sim) == [200, 200]


async def test_wrong_credentials_are_explained(sim: ZoomSimulator) -> None:
    client = make_client(sim, settings_for(sim, client_secret="not-the-secret"))
    try:
        with pytest.raises(ProviderApiError) as caught:
            await client.get_user(TEACHER)
    finally:
        await client.aclose()
    assert caught.value.message.startswith("Zoom refused viltbridge's app credentials: the client_id or "
                                           "client_secret is wrong.")
    assert caught.value.code == "invalid_client"
    assert "not-the-secret" not in caught.value.message


# -- retries ----------------------------------------------------------------------------------------------------


async def test_429_storm_honours_retry_after(sim: ZoomSimulator, zoom: ZoomClient) -> None:
    sim.state.inject_fault(429, count=3, path="/users/", retry_after="0.15")
    started = time.monotonic()
    assert (await zoom.get_user(TEACHER))["email"] == TEACHER
    assert time.monotonic() - started >= 0.45
    assert sim.state.faults[0].remaining == 0


async def test_429_without_retry_after_waits_for_the_next_second(sim: ZoomSimulator, zoom: ZoomClient) -> None:
    await zoom.get_user(TEACHER)  # the token first
    sim.state.inject_fault(429, count=1, path="/users/")  # X-RateLimit-Type: QPS, no Retry-After
    started = time.monotonic()
    await zoom.get_user(TEACHER)
    assert time.monotonic() - started < 2.5  # about a second, not a backoff schedule (slack for a loaded machine)


async def test_server_errors_then_success(sim: ZoomSimulator, zoom: ZoomClient) -> None:
    meeting = await zoom.create_meeting(TEACHER, MEETING)
    sim.state.inject_fault(503, count=2, method="GET", path="/meetings/")
    assert (await zoom.get_meeting(meeting["id"]))["topic"] == "Algebra 101"


async def test_meeting_create_is_not_repeated_after_a_server_error(sim: ZoomSimulator, zoom: ZoomClient) -> None:
    sim.state.inject_fault(502, count=1, method="POST", path="/meetings")
    with pytest.raises(ProviderApiError) as caught:
        await zoom.create_meeting(TEACHER, MEETING)
    assert caught.value.ambiguous and caught.value.http_status == 502
    assert "may still have reached Zoom" in caught.value.message
    assert not sim.state.meetings  # a retry would have created one


async def test_timeouts(sim: ZoomSimulator, zoom: ZoomClient) -> None:
    # Attempts of 2 s (a quick answer fits even on a busy machine) against answers of 30 s: far apart.
    budget = Budget(total=15.0, max_queue_wait=1.0, attempt_timeout=2.0, max_attempts=3)
    await zoom.get_user(TEACHER)
    sim.state.inject_fault(delay=30.0, count=1, path="/users/")
    started = time.monotonic()
    await zoom.get_user(TEACHER, budget=budget)  # the slow answer is abandoned, the retry is quick
    assert time.monotonic() - started < 15  # not the 30 s of the slow answer
    sim.state.inject_fault(delay=30.0, count=1, method="POST", path="/meetings")
    with pytest.raises(ProviderUnreachable) as caught:
        await zoom.create_meeting(TEACHER, MEETING, budget=budget)
    assert caught.value.reason == "timeout" and caught.value.ambiguous
    assert caught.value.message.startswith(f"Zoom did not answer in time while viltbridge tried to create a "
                                           f"meeting for host {TEACHER}")


async def test_circuit_breaker_opens_on_repeated_outages(sim: ZoomSimulator) -> None:
    breaker = new_breaker("zoom:test", fail_max=2, reset_timeout=0.3)
    client = make_client(sim, breaker=breaker)
    once = Budget(total=2.0, max_queue_wait=1.0, attempt_timeout=1.0, max_attempts=1)
    try:
        await client.get_user(TEACHER)
        sim.state.inject_fault(500, count=100, path="/users/")
        for _ in range(2):
            with pytest.raises(ProviderApiError):
                await client.get_user(TEACHER, budget=once)
        with pytest.raises(CircuitOpen) as caught:
            await client.get_user(TEACHER, budget=once)
        assert sim.state.faults[0].remaining == 98  # the open circuit sent nothing
        assert caught.value.retry_after_seconds == 1
        sim.state.clear_faults()
        await asyncio.sleep(0.35)
        await client.get_user(TEACHER, budget=once)
        assert breaker.current_state == "closed"
    finally:
        await client.aclose()


# -- rate limits ------------------------------------------------------------------------------------------------


async def test_burst_stays_under_the_plans_per_second_limit(sim: ZoomSimulator) -> None:
    reset(sim, start=None, record_exchanges=True)  # the simulator's seconds follow real time
    client = make_client(sim)
    try:
        await client.get_user(TEACHER)
        started = int(time.time())
        users = await asyncio.gather(*[client.get_user(TEACHER, budget=BULK) for _ in range(40)])
        ended = int(time.time())
    finally:
        await client.aclose()
    assert len(users) == 40
    assert ended > started  # Pro: 30 Light calls a second, so the client held some back to a later second
    assert statuses(sim, "/users/{userId}") == [200] * 41  # and Zoom never said 429


async def test_host_daily_cap_is_kept_client_side(sim: ZoomSimulator) -> None:
    client = make_client(sim, host_daily_meeting_writes=2)
    try:
        meeting = await client.create_meeting(TEACHER, MEETING)
        await client.update_meeting(meeting["id"], {"topic": "Algebra 102"}, host=TEACHER)
        with pytest.raises(RateLimitExceeded) as caught:
            await client.create_meeting(TEACHER, MEETING)
    finally:
        await client.aclose()
    assert caught.value.message.startswith(f"Zoom's daily limit of 2 meeting creates/updates for host {TEACHER} is "
                                           "used up until 00:00 UTC")
    assert caught.value.retry_after_seconds is not None and caught.value.retry_after_seconds > 0
    assert len(sim.state.meetings) == 1  # the third write never reached Zoom


async def test_host_daily_cap_reported_by_zoom(sim: ZoomSimulator) -> None:
    reset(sim, host_daily_meeting_writes=1)
    client = make_client(sim)
    try:
        await client.create_meeting(TEACHER, MEETING)
        started = time.monotonic()
        with pytest.raises(ProviderApiError) as caught:
            await client.create_meeting(TEACHER, MEETING)
    finally:
        await client.aclose()
    assert time.monotonic() - started < 30  # a daily limit is not retried (a retry would wait until midnight)
    assert (caught.value.http_status, caught.value.code) == (429, 429)
    assert caught.value.message == (f"Zoom could not create a meeting for host {TEACHER}: Zoom's daily limit of 1 "
                                    f"meeting creates/updates for host {TEACHER} is used up until 00:00 UTC. Try "
                                    "again after midnight UTC, or use another host for new sessions.")


# -- errors -----------------------------------------------------------------------------------------------------


async def test_zoom_errors_become_admin_messages(sim: ZoomSimulator, zoom: ZoomClient) -> None:
    with pytest.raises(ProviderApiError) as caught:
        await zoom.create_meeting("nobody@example.edu", MEETING)
    assert (caught.value.http_status, caught.value.code) == (404, 1001)
    assert "host nobody@example.edu is not a user on this Zoom account" in caught.value.message

    sim.state.seed_user("basic@example.edu", type=1)
    with pytest.raises(ProviderApiError) as caught:
        await zoom.create_meeting("basic@example.edu", MEETING)
    assert caught.value.code == 3161
    assert "host basic@example.edu is not a licensed Zoom user on this account" in caught.value.message

    with pytest.raises(ProviderApiError) as caught:
        await zoom.get_meeting(81234567890)
    assert caught.value.code == 3001
    assert caught.value.message == ("Zoom could not read the Zoom meeting 81234567890: Zoom meeting 81234567890 does "
                                    "not exist (it may have been deleted in Zoom).")
    assert caught.value.provider_message == "Meeting does not exist: 81234567890."


async def test_missing_scope_is_explained(sim: ZoomSimulator) -> None:
    reset(sim, scopes=("meeting:read:admin",))
    client = make_client(sim)
    try:
        with pytest.raises(ProviderApiError) as caught:
            await client.get_user(TEACHER)
    finally:
        await client.aclose()
    assert caught.value.code == 4700
    assert "the Zoom app lacks a permission this needs" in caught.value.message


# -- meetings, registrants, reports -----------------------------------------------------------------------------


async def test_meeting_and_registrant_round_trip(sim: ZoomSimulator, zoom: ZoomClient) -> None:
    meeting = await zoom.create_meeting(TEACHER, MEETING)
    assert await zoom.update_meeting(meeting["id"], {"topic": "Algebra 102"}, host=TEACHER) is None  # 204
    assert (await zoom.get_meeting(meeting["id"]))["topic"] == "Algebra 102"
    ann = await zoom.add_registrant(meeting["id"], "ann@example.org", "Ann", "Lee")
    assert ann["join_url"].startswith(sim.base_url + "/w/")
    again = await zoom.add_registrant(meeting["id"], "ann@example.org", "Ann", "Lee")
    assert again["registrant_id"] == ann["registrant_id"]
    people = [{"email": f"learner{n}@example.org", "first_name": f"L{n}"} for n in range(35)]
    rows = await zoom.batch_registrants(meeting["id"], people)  # two calls: 30 + 5
    assert len(rows) == 35 and all(row["join_url"] for row in rows)
    listed = await zoom.list_registrants(meeting["id"])
    assert len(listed) == 36
    await zoom.delete_meeting(meeting["id"])
    await zoom.delete_meeting(meeting["id"], missing_ok=True)
    with pytest.raises(ProviderApiError):
        await zoom.delete_meeting(meeting["id"])


async def test_a_hosts_meetings_are_listed_as_scheduled_or_upcoming(sim: ZoomSimulator) -> None:
    reset(sim, record_exchanges=True)
    async with make_client(sim) as zoom:
        soon = await zoom.create_meeting(TEACHER, MEETING)
        far = await zoom.create_meeting(TEACHER, {**MEETING, "start_time": "2026-12-01T10:00:00Z"})
        scheduled = [row async for row in zoom.list_user_meetings(TEACHER)]
        upcoming = [row async for row in zoom.list_user_meetings(TEACHER, type="upcoming")]
    assert [row["id"] for row in scheduled] == [soon["id"], far["id"]]
    assert [row["id"] for row in upcoming] == [soon["id"]]  # Zoom's upcoming listing stops six months ahead
    listings = [e for e in sim.state.exchanges if (e["method"], e["route"]) == ("GET", "/users/{userId}/meetings")]
    assert [e["headers"]["x-ratelimit-category"] for e in listings] == ["Medium", "Medium"]


async def _ended_meeting(sim: ZoomSimulator, zoom: ZoomClient, people: int, uuid: str | None = None) -> int:
    meeting = await zoom.create_meeting(TEACHER, MEETING)
    sim.state.start_meeting(meeting["id"], uuid=uuid)
    for n in range(people):
        sim.state.join(meeting["id"], f"Learner {n}")
    sim.state.end_meeting(meeting["id"])
    sim.state.mark_report_processed(meeting["id"])
    return int(meeting["id"])


async def test_report_pages_through_every_participant(sim: ZoomSimulator) -> None:
    reset(sim, record_exchanges=True)
    client = make_client(sim)
    try:
        meeting_id = await _ended_meeting(sim, client, 650)
        rows = [row async for row in client.report_participants(meeting_id)]
    finally:
        await client.aclose()
    assert len(rows) == 651  # the host and 650 learners
    assert len({row["user_id"] for row in rows}) == 651
    assert statuses(sim, "/report/meetings/{meetingId}/participants") == [200, 200, 200]  # 300 a page


async def test_report_restarts_when_the_page_token_expired(sim: ZoomSimulator) -> None:
    reset(sim, record_exchanges=True)
    client = make_client(sim)
    rows: list[dict[str, Any]] = []
    try:
        meeting_id = await _ended_meeting(sim, client, 650)
        async for row in client.report_participants(meeting_id):
            rows.append(row)
            if len(rows) == 300:
                sim.state.advance_clock(16 * 60)  # a slow consumer: the next_page_token lives 15 minutes
    finally:
        await client.aclose()
    assert len(rows) == 651
    assert len({row["user_id"] for row in rows}) == 651  # no row twice
    assert statuses(sim, "/report/meetings/{meetingId}/participants") == [200, 400, 200, 200, 200]


async def test_report_and_instances_by_uuid_needing_double_encoding(sim: ZoomSimulator, zoom: ZoomClient) -> None:
    meeting_id = await _ended_meeting(sim, zoom, 2, uuid="/ab//cd+ef==")
    instances = await zoom.past_meeting_instances(meeting_id)
    assert [inst["uuid"] for inst in instances] == ["/ab//cd+ef=="]
    rows = [row async for row in zoom.report_participants(instances[0]["uuid"])]
    assert [row["name"] for row in rows] == ["Tess Teacher", "Learner 0", "Learner 1"]


# -- logs -------------------------------------------------------------------------------------------------------


async def test_debug_log_redacts_the_token_and_the_client_secret(sim: ZoomSimulator, zoom: ZoomClient) -> None:
    capture = Capture()
    logger = logging.getLogger("viltbridge.providers.http")
    logger.addHandler(capture)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    flag = debug_requested.set(True)
    try:
        meeting = await zoom.create_meeting(TEACHER, MEETING)
        sim.state.advance_clock(3600)
        await zoom.get_meeting(meeting["id"])  # 401, new token, again
    finally:
        debug_requested.reset(flag)
        logger.removeHandler(capture)
        logger.setLevel(level)
    text = "\n".join(capture.lines)
    assert len(capture.lines) == 5  # token, create, 401, token, get
    assert f"zoom POST {sim.oauth_token_url} -> 200 in " in capture.lines[0]
    assert "'access_token': '***'" in capture.lines[0]
    assert f"zoom POST {sim.api_base_url}/users/{TEACHER}/meetings -> 201 in " in capture.lines[1]
    assert "-> 401 in " in capture.lines[2]
    secrets = [*sim.state.tokens, sim.config.client_secret, meeting["start_url"], meeting["join_url"],
               meeting["encrypted_password"]]
    for secret in secrets:
        assert secret not in text
