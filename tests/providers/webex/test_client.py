"""The Webex REST client against the simulator: settings messages, token refresh, 429 honoured, Link pagination,
and Webex's errors turned into messages an admin can act on."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from tests.providers.conftest import Capture
from tests.providers.webex.conftest import HOST, T0
from viltbridge.core.errors import InvalidInput, ProviderFailed
from viltbridge.providers.http import ProviderApiError, new_breaker
from viltbridge.providers.webex import client as client_module
from viltbridge.providers.webex.client import WebexClient, next_link
from viltbridge.providers.webex.settings import WebexSettings
from viltbridge.providers.webex.simulator import WebexSimulator

pytestmark = pytest.mark.pure


def _client(sim: WebexSimulator, **settings: Any) -> WebexClient:
    # A breaker of its own: failures provoked here must not open the shared one for the simulator's client_id.
    return WebexClient(WebexSettings.from_settings(sim.settings(**settings)), breaker=new_breaker("webex-test"))


@pytest.fixture
async def webex(sim: WebexSimulator) -> AsyncIterator[WebexClient]:
    client = _client(sim)
    yield client
    await client.aclose()


def _meeting_body(**changes: Any) -> dict[str, Any]:
    start = T0 + timedelta(hours=2)
    return {"title": "Safety basics", "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat(),
            "timezone": "UTC", "hostEmail": HOST.email, **changes}


# -- settings -----------------------------------------------------------------------------------------------------


def test_settings_need_a_way_to_authenticate() -> None:
    with pytest.raises(InvalidInput, match="give refresh_token with client_id and client_secret"):
        WebexSettings.from_settings({})
    with pytest.raises(InvalidInput, match="refresh_token needs client_id and client_secret"):
        WebexSettings.from_settings({"refresh_token": "r"})


def test_bad_settings_are_named_with_what_to_do() -> None:
    with pytest.raises(InvalidInput) as caught:
        WebexSettings.from_settings({"access_token": "t", "api_base_url": "webexapis.com", "link_minutes": 90,
                                     "colour": "blue"})
    message = str(caught.value)
    assert "api_base_url: must be an http(s) URL" in message
    assert "link_minutes: must be between 1 and 60" in message
    assert "colour: unknown setting" in message and "Known settings:" in message


def test_secrets_never_show_in_the_settings_repr() -> None:
    settings = WebexSettings.from_settings({"client_id": "cid", "client_secret": "s3cret-value",
                                            "refresh_token": "refresh-value", "webhook_secret": "hook-value"})
    shown = repr(settings) + str(settings.model_dump())
    assert not any(secret in shown for secret in ("s3cret-value", "refresh-value", "hook-value"))


# -- tokens -------------------------------------------------------------------------------------------------------


async def test_a_token_is_fetched_once_and_refreshed_when_webex_refuses_it(sim: WebexSimulator,
                                                                          webex: WebexClient) -> None:
    assert await webex.find_person(HOST.email) is not None
    assert await webex.find_person("nobody@example.com") is None
    assert webex.tokens.fetches == 1
    sim.state.expire_tokens()  # as after 14 days: Webex answers 401
    assert await webex.find_person(HOST.email) is not None
    assert webex.tokens.fetches == 2


async def test_an_expired_plain_access_token_says_how_to_fix_it(sim: WebexSimulator) -> None:
    sim.reset(start=T0, access_token=None)
    client = WebexClient(WebexSettings.from_settings({"access_token": "stale", "api_base_url": sim.api_base_url}),
                         breaker=new_breaker("webex-test"))
    with pytest.raises(ProviderFailed, match="Configure refresh_token, client_id and client_secret"):
        await client.find_person(HOST.email)
    await client.aclose()


async def test_a_wrong_client_secret_is_named(sim: WebexSimulator) -> None:
    client = _client(sim, client_secret="wrong")
    with pytest.raises(ProviderFailed, match="client_id or client_secret is wrong"):
        await client.find_person(HOST.email)
    await client.aclose()


async def test_a_revoked_refresh_token_says_to_authorise_again(sim: WebexSimulator) -> None:
    client = _client(sim, refresh_token="revoked")
    with pytest.raises(ProviderFailed, match="Authorise the app again"):
        await client.find_person(HOST.email)
    await client.aclose()


async def test_secrets_are_not_logged(sim: WebexSimulator, webex: WebexClient) -> None:
    capture = Capture()
    logger = logging.getLogger("viltbridge")
    old_level = logger.level
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    try:
        await webex.find_person(HOST.email)
    finally:
        logger.removeHandler(capture)
        logger.setLevel(old_level)
    assert capture.lines, "nothing was logged: the check would prove nothing"
    text = "\n".join(capture.lines)
    assert sim.config.client_secret not in text and sim.config.refresh_token not in text
    assert not any(token in text for token in sim.state.tokens)


# -- rate limits and errors ------------------------------------------------------------------------------------------


async def test_a_429_is_retried_after_its_retry_after(sim: WebexSimulator, webex: WebexClient) -> None:
    await webex.find_person(HOST.email)  # token first: only the API call meets the 429
    sim.state.inject_fault(429, path="/people", retry_after="1")
    started = time.monotonic()
    assert await webex.find_person(HOST.email) is not None
    assert time.monotonic() - started >= 0.9


async def test_the_simulators_own_rate_limit_answers_429_with_retry_after(sim: WebexSimulator) -> None:
    sim.reset(start=T0, rate_limit_per_second=2)
    sim.state.seed_person(HOST.email)
    client = _client(sim)
    started = time.monotonic()
    for _ in range(3):
        await client.find_person(HOST.email)
    assert time.monotonic() - started >= 0.9  # the third call waited for Retry-After: 1
    await client.aclose()


async def test_a_persistent_429_says_how_long_to_wait(sim: WebexSimulator, webex: WebexClient) -> None:
    await webex.find_person(HOST.email)
    sim.state.inject_fault(429, count=10, path="/people", retry_after="30")
    with pytest.raises(ProviderApiError, match="limiting this account's API calls") as caught:
        await webex.find_person(HOST.email)
    assert caught.value.retry_after_seconds == 30


async def test_an_unlicensed_host_gets_webexs_reason_and_tracking_id(sim: WebexSimulator,
                                                                     webex: WebexClient) -> None:
    sim.state.seed_person("basic@example.com", licensed=False)
    with pytest.raises(ProviderApiError) as caught:
        await webex.create_meeting(_meeting_body(hostEmail="basic@example.com"))
    message = caught.value.message
    assert "Webex says the request is invalid" in message and "does not have a host account" in message
    assert "Webex tracking id ROUTERGW_" in message


async def test_a_missing_meeting_is_explained(webex: WebexClient) -> None:
    with pytest.raises(ProviderApiError, match="does not exist at Webex") as caught:
        await webex.get_meeting("0123456789abcdef0123456789abcdef")
    assert caught.value.http_status == 404


async def test_deleting_twice_is_fine_when_asked(webex: WebexClient) -> None:
    meeting = await webex.create_meeting(_meeting_body())
    await webex.delete_meeting(meeting["id"], host=HOST.email)
    await webex.delete_meeting(meeting["id"], host=HOST.email, missing_ok=True)
    with pytest.raises(ProviderApiError):
        await webex.delete_meeting(meeting["id"], host=HOST.email)


# -- pagination ---------------------------------------------------------------------------------------------------


def test_next_link_reads_rfc5988_headers() -> None:
    header = '<https://webexapis.com/v1/meetingParticipants?max=2&cursor=Mg>; rel="next"'
    assert next_link(header) == "https://webexapis.com/v1/meetingParticipants?max=2&cursor=Mg"
    assert next_link('<https://x/y>; rel="prev"') is None
    assert next_link(None) is None


async def test_participants_follow_every_next_link(sim: WebexSimulator, webex: WebexClient,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "PAGE_SIZE", 2)
    sim.reset(start=T0, record_exchanges=True)
    sim.state.seed_person(HOST.email)
    meeting = await webex.create_meeting(_meeting_body())
    for n in range(5):
        sim.state.join(meeting["id"], f"Learner {n}", f"l{n}@example.com")
    rows = [row async for row in webex.participants(meeting["id"], host=HOST.email)]
    assert sorted(row["email"] for row in rows) == [f"l{n}@example.com" for n in range(5)]
    pages = [x for x in sim.state.exchanges if x["route"] == "/meetingParticipants"]
    assert len(pages) == 3
