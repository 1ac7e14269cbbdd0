"""The Graph client against the simulator: settings, tokens, throttling and Graph's errors in an admin's words."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from tests.providers.conftest import Capture
from viltbridge.core.errors import InvalidInput
from viltbridge.providers.http import ProviderApiError
from viltbridge.providers.teams.client import TeamsClient
from viltbridge.providers.teams.settings import TeamsSettings
from viltbridge.providers.teams.simulator import TeamsSimulator

from .conftest import HOST

pytestmark = pytest.mark.pure


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client(sim: TeamsSimulator, clock: FakeClock | None = None, **settings: str) -> TeamsClient:
    return TeamsClient(TeamsSettings.from_settings(sim.settings(**settings)), clock=clock or FakeClock())


# -- settings -------------------------------------------------------------------------------------------------


def test_settings_name_each_wrong_setting() -> None:
    with pytest.raises(InvalidInput) as caught:
        TeamsSettings.from_settings({"client_id": " ", "client_secret": "s", "graph_base_url": "graph", "colour": 1})
    message = str(caught.value)
    assert "tenant_id: missing (required)" in message
    assert "client_id: must not be empty" in message
    assert "graph_base_url: must be an http(s) URL" in message
    assert "colour: unknown setting" in message


def test_the_secret_is_never_shown() -> None:
    settings = TeamsSettings.from_settings({"tenant_id": "t", "client_id": "c", "client_secret": "hunter2"})
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())
    assert settings.token_url == "https://login.microsoftonline.com/t/oauth2/v2.0/token"
    assert settings.scope == "https://graph.microsoft.com/.default"


def test_settings_typed_as_text_are_read() -> None:
    settings = TeamsSettings.from_settings({"tenant_id": "t", "client_id": "c", "client_secret": "s",
                                            "calendar_events": "true", "graph_base_url": "https://g.example/v1.0/"})
    assert settings.calendar_events is True and settings.graph_base_url == "https://g.example/v1.0"


# -- tokens ---------------------------------------------------------------------------------------------------


async def test_one_token_serves_many_calls(sim: TeamsSimulator) -> None:
    async with client(sim) as graph:
        await graph.get_user(HOST.email)
        await graph.get_user(HOST.email)
        assert graph.tokens.fetches == 1
    assert sim.state.tokens_issued == 1


async def test_concurrent_first_calls_share_one_token_request(sim: TeamsSimulator) -> None:
    async with client(sim) as graph:
        await asyncio.gather(*(graph.get_user(HOST.email) for _ in range(6)))
        assert graph.tokens.fetches == 1
    assert sim.state.tokens_issued == 1


async def test_the_token_is_renewed_before_it_expires(sim: TeamsSimulator) -> None:
    clock = FakeClock()
    async with client(sim, clock) as graph:
        await graph.get_user(HOST.email)
        clock.now += 3599 - 300 - 1  # just inside the 5-minute margin before expiry: still fresh
        await graph.get_user(HOST.email)
        assert graph.tokens.fetches == 1
        clock.now += 2  # within the margin: renewed, although Graph would still accept the old one
        await graph.get_user(HOST.email)
        assert graph.tokens.fetches == 2


async def test_a_rejected_token_is_replaced_once(sim: TeamsSimulator) -> None:
    async with client(sim) as graph:
        await graph.get_user(HOST.email)
        sim.state.expire_tokens()  # Graph stops accepting the cached token early (revoked, clock skew)
        user = await graph.get_user(HOST.email)
        assert user["userPrincipalName"] == HOST.email
        assert graph.tokens.fetches == 2


async def test_a_wrong_secret_says_what_to_do_and_is_not_logged(sim: TeamsSimulator) -> None:
    capture = Capture()
    logger = logging.getLogger("viltbridge.providers")
    logger.addHandler(capture)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        async with client(sim, client_secret="wrong-and-secret") as graph:
            with pytest.raises(ProviderApiError) as caught:
                await graph.get_user(HOST.email)
    finally:
        logger.removeHandler(capture)
        logger.setLevel(level)
    assert "client secret: it is wrong or has expired" in caught.value.message
    assert capture.lines, "the exchange should have been logged at DEBUG"
    assert not any("wrong-and-secret" in line for line in capture.lines)


async def test_an_unknown_tenant_is_named(sim: TeamsSimulator) -> None:
    async with client(sim, tenant_id="not-our-tenant") as graph:
        with pytest.raises(ProviderApiError, match="does not know the tenant 'not-our-tenant'"):
            await graph.get_user(HOST.email)


# -- throttling -----------------------------------------------------------------------------------------------


async def test_a_429_is_retried_after_retry_after(sim: TeamsSimulator) -> None:
    async with client(sim) as graph:
        await graph.get_user(HOST.email)
        sim.state.throttle(count=1, retry_after="1")
        started = time.monotonic()
        user = await graph.get_user(HOST.email)
        assert time.monotonic() - started >= 0.95
    assert user["userPrincipalName"] == HOST.email
    assert [path for _, path in sim.state.requests].count(f"/v1.0/users/{HOST.email}") == 3


async def test_a_retry_after_beyond_the_budget_fails_at_once_and_says_when(sim: TeamsSimulator) -> None:
    async with client(sim) as graph:
        sim.state.throttle(count=1, retry_after="120")
        started = time.monotonic()
        with pytest.raises(ProviderApiError) as caught:
            await graph.get_user(HOST.email)
        assert time.monotonic() - started < 30  # not the 120 s Graph asked for
    assert caught.value.http_status == 429
    assert caught.value.retry_after_seconds == 120


# -- Graph's errors -------------------------------------------------------------------------------------------

MEETING = {"subject": "x", "externalId": "k", "startDateTime": "2026-03-02T15:00:00Z",
           "endDateTime": "2026-03-02T16:00:00Z"}


async def test_a_missing_access_policy_names_the_policy_and_the_user(sim: TeamsSimulator) -> None:
    sim.state.set_policy(HOST.email, granted=False)
    user_id = sim.state.user(HOST.email).id
    async with client(sim, access_policy_name="vb-meetings") as graph:
        with pytest.raises(ProviderApiError) as caught:
            await graph.create_or_get_meeting(user_id, MEETING, organizer=HOST.email)
    message = caught.value.message
    assert caught.value.http_status == 403
    assert f"New-CsApplicationAccessPolicy -Identity vb-meetings -AppIds {sim.config.client_id}" in message
    assert f"Grant-CsApplicationAccessPolicy -PolicyName vb-meetings -Identity {user_id} " in message
    assert "30 minutes" in message


@pytest.mark.parametrize("code", ["Forbidden", "General"])
async def test_the_missing_access_policy_is_recognised_by_its_words_whatever_the_code(
        sim: TeamsSimulator, code: str) -> None:
    # Graph's current answer names neither the app nor the user, and its code varies by tenant: the policy must
    # still be named (not "grant API permissions"), with the app, the user and both PowerShell commands.
    sim.reset(start=sim.state.now(), access_policy_error_code=code)
    sim.state.seed_user(HOST.email, policy=False)
    user_id = sim.state.user(HOST.email).id
    async with client(sim, access_policy_name="vb-meetings") as graph:
        with pytest.raises(ProviderApiError) as created:
            await graph.create_or_get_meeting(user_id, MEETING, organizer=HOST.email)
        with pytest.raises(ProviderApiError) as read:  # a call that names no user: the path's organizer is named
            await graph.get_meeting(user_id, "MSpkYzE3")
    for caught in (created, read):
        message = caught.value.message
        assert f"the app {sim.config.client_id} has no Teams application access policy for user {user_id}" in message
        assert "No Application Access Policy found for this app" in message
        assert f"New-CsApplicationAccessPolicy -Identity vb-meetings -AppIds {sim.config.client_id}" in message
        assert f"Grant-CsApplicationAccessPolicy -PolicyName vb-meetings -Identity {user_id} " in message
        assert "API permissions" not in message
    assert f"({HOST.email})" in created.value.message


async def test_an_unknown_user_is_named(sim: TeamsSimulator) -> None:
    async with client(sim) as graph:
        with pytest.raises(ProviderApiError, match=r"nobody@example\.com is not a user in the Microsoft 365 tenant"):
            await graph.get_user("nobody@example.com")
