"""The GoTo Training REST client against the simulator: settings messages, token renewal (Basic client
credentials, refresh-token rotation kept and handed on), 429s without Retry-After backed off, and GoTo's two error
bodies turned into messages an admin can act on."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import Any

import pytest

from tests.providers.conftest import Capture
from tests.providers.goto.conftest import T0
from viltbridge.core.errors import InvalidInput, ProviderFailed
from viltbridge.providers.goto.client import GotoClient, goto_time
from viltbridge.providers.goto.settings import GotoSettings
from viltbridge.providers.goto.simulator import GotoSimulator
from viltbridge.providers.http import BULK, ProviderApiError, RateLimits, new_breaker

pytestmark = pytest.mark.pure

START = T0 + timedelta(hours=2)


def _client(sim: GotoSimulator, **settings: Any) -> GotoClient:
    # A breaker and buckets of its own: failures and bursts provoked here must not leak into other tests.
    return GotoClient(GotoSettings.from_settings(sim.settings(**settings)), breaker=new_breaker("goto-test"),
                      limits=RateLimits())


@pytest.fixture
async def goto(sim: GotoSimulator) -> AsyncIterator[GotoClient]:
    client = _client(sim)
    yield client
    await client.aclose()


def _training(**changes: Any) -> dict[str, Any]:
    return {"name": "Safety basics", "description": "Onboarding", "timeZone": "America/New_York",
            "times": [{"startDate": goto_time(START), "endDate": goto_time(START + timedelta(hours=1))}], **changes}


# -- settings -----------------------------------------------------------------------------------------------------


def test_one_message_names_every_wrong_setting() -> None:
    with pytest.raises(InvalidInput) as caught:
        GotoSettings.from_settings({"client_id": " ", "organizer_key": "abc", "api_base_url": "api.getgo.com",
                                    "time_zone": "Mars/Olympus", "registration_url": "https://x/r",
                                    "colour": "blue"})
    message = str(caught.value)
    for expected in ("client_id: must not be empty", "client_secret: missing (required)",
                     "refresh_token: missing (required)", "organizer_key: must be GoTo's numeric key",
                     "api_base_url: must be an http(s) URL", "time_zone: must be a time zone id",
                     "registration_url: must be an http(s) URL containing {trainingKey}", "colour: unknown setting",
                     "Known settings:"):
        assert expected in message, (expected, message)


def test_defaults_are_gotos_real_endpoints() -> None:
    settings = GotoSettings.from_settings({"client_id": "c", "client_secret": "s", "refresh_token": "r",
                                           "organizer_key": "123", "account_key": "456"})
    assert settings.api_base_url == "https://api.getgo.com/G2T/rest"
    assert settings.admin_api_url == "https://api.getgo.com/admin/rest/v1"
    assert settings.token_url == "https://authentication.logmeininc.com/oauth/token"
    assert settings.time_zone == "UTC" and settings.notify_on_reschedule is False


def test_secrets_never_show_in_the_settings_repr() -> None:
    settings = GotoSettings.from_settings({"client_id": "cid", "client_secret": "s3cret-value",
                                           "refresh_token": "refresh-value", "organizer_key": "1",
                                           "account_key": "2"})
    shown = repr(settings) + str(settings.model_dump())
    assert "s3cret-value" not in shown and "refresh-value" not in shown


def test_the_organizer_and_account_keys_are_required_with_where_to_find_them() -> None:
    # GoTo's token answer no longer carries them: without account_key co-organizers would silently vanish.
    with pytest.raises(InvalidInput) as caught:
        GotoSettings.from_settings({"client_id": "c", "client_secret": "s", "refresh_token": "r"})
    message = str(caught.value)
    for key in ("organizer_key", "account_key"):
        assert f"{key}: missing (required): call GET https://api.getgo.com/admin/rest/v1/me" in message, message


# -- tokens -------------------------------------------------------------------------------------------------------


async def test_a_token_is_fetched_once_and_renewed_when_goto_refuses_it(sim: GotoSimulator,
                                                                      goto: GotoClient) -> None:
    assert await goto.list_trainings() == []
    await goto.create_training(_training())
    assert goto.tokens.fetches == 1 and sim.state.token_requests == 1
    assert goto.tokens.principal == "tess@example.com"
    sim.state.expire_tokens()  # as after 60 minutes: GoTo answers 401
    assert len(await goto.list_trainings()) == 1
    assert goto.tokens.fetches == 2


async def test_a_token_is_renewed_before_its_60_minutes_are_up(sim: GotoSimulator) -> None:
    now = [0.0]
    client = GotoClient(GotoSettings.from_settings(sim.settings()), breaker=new_breaker("goto-test"),
                        limits=RateLimits(), clock=lambda: now[0])
    await client.list_trainings()
    now[0] = 54 * 60.0  # within the last 6 minutes of the hour: still fresh
    await client.list_trainings()
    assert client.tokens.fetches == 1
    now[0] = 56 * 60.0  # 5 minutes before expiry: renewed before GoTo would refuse it
    await client.list_trainings()
    assert client.tokens.fetches == 2
    await client.aclose()


class StoredSettings:
    """A connection's settings store shared by adapters (a `SettingsSink`), in memory; `fails` makes writing fail."""

    def __init__(self, *, fails: bool = False) -> None:
        self.values: dict[str, str] = {}
        self.writes: list[dict[str, str]] = []
        self.fails = fails

    async def __call__(self, changes: Mapping[str, str]) -> None:
        if self.fails:
            raise RuntimeError("database down")
        self.writes.append(dict(changes))
        self.values.update(changes)

    async def stored(self, key: str) -> str | None:
        return self.values.get(key)


async def test_a_rotated_refresh_token_is_used_next_and_handed_on(goto_simulator: GotoSimulator) -> None:
    sim = goto_simulator
    sim.reset(start=T0, rotate_refresh_tokens=True)
    store = StoredSettings()
    client = GotoClient(GotoSettings.from_settings(sim.settings()), breaker=new_breaker("goto-test"),
                        limits=RateLimits(), on_settings_change=store)
    capture = Capture()
    logger = logging.getLogger("viltbridge")
    old_level = logger.level
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    try:
        await client.list_trainings()
        sim.state.expire_tokens()
        await client.list_trainings()  # the second renewal must use the rotated token: the configured one is dead
        sim.state.expire_tokens()
        await client.list_trainings()
    finally:
        logger.removeHandler(capture)
        logger.setLevel(old_level)
    stored = [write["refresh_token"] for write in store.writes]
    assert stored == sim.state.issued_refresh_tokens and len(stored) == 3
    assert capture.lines and not any(token in "\n".join(capture.lines) for token in stored)  # never logged
    assert client.tokens.refresh_token.get_secret_value() == stored[-1]
    assert client.tokens.rotations == 3
    await client.aclose()


async def test_a_failing_refresh_token_sink_does_not_fail_the_call(goto_simulator: GotoSimulator,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    sim = goto_simulator
    sim.reset(start=T0, rotate_refresh_tokens=True)

    client = GotoClient(GotoSettings.from_settings(sim.settings()), breaker=new_breaker("goto-test"),
                        limits=RateLimits(), on_settings_change=StoredSettings(fails=True))
    assert await client.list_trainings() == []
    assert "storing the provider's new refresh_token failed" in caplog.text
    sim.state.expire_tokens()
    assert await client.list_trainings() == []  # the rotated token in memory still works
    await client.aclose()


async def test_a_refresh_token_another_adapter_replaced_is_read_back_from_the_store(
        goto_simulator: GotoSimulator) -> None:
    """Two adapters of one connection (the web server's and the job worker's, or two server processes) each hold
    the configured refresh token; GoTo revokes it when the first renews. The second must renew with the token the
    first stored, not fail until a restart."""
    sim = goto_simulator
    sim.reset(start=T0, rotate_refresh_tokens=True)
    store = StoredSettings()
    web, worker = (GotoClient(GotoSettings.from_settings(sim.settings()), breaker=new_breaker(f"goto-test-{name}"),
                              limits=RateLimits(), on_settings_change=store) for name in ("web", "worker"))
    await web.list_trainings()  # renews: the configured token is revoked, the rotated one stored
    await worker.list_trainings()  # holds the revoked one: renews with the stored one (and rotates again)
    sim.state.expire_tokens()
    await web.list_trainings()  # now web's is the revoked one
    issued = sim.state.issued_refresh_tokens
    assert len(issued) == 3 and store.values["refresh_token"] == issued[-1]
    assert web.tokens.refresh_token.get_secret_value() == issued[-1]

    sim.state.revoke_refresh_tokens()  # a revoked authorisation still says so, after one more look at the store
    sim.state.expire_tokens()
    with pytest.raises(ProviderFailed, match="organizer must authorise the OAuth client again"):
        await worker.list_trainings()
    await web.aclose()
    await worker.aclose()


async def test_a_wrong_client_secret_is_named(sim: GotoSimulator) -> None:
    client = _client(sim, client_secret="wrong")
    with pytest.raises(ProviderFailed, match="client_id or client_secret is wrong"):
        await client.list_trainings()
    await client.aclose()


async def test_a_revoked_refresh_token_says_to_authorise_again(sim: GotoSimulator) -> None:
    sim.state.revoke_refresh_tokens()
    client = _client(sim)
    with pytest.raises(ProviderFailed, match="organizer must authorise the OAuth client again") as caught:
        await client.list_trainings()
    assert not caught.value.transient  # waiting will not help: a person must act
    await client.aclose()


async def test_secrets_are_not_logged(sim: GotoSimulator, goto: GotoClient) -> None:
    capture = Capture()
    logger = logging.getLogger("viltbridge")
    old_level = logger.level
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    try:
        await goto.create_training(_training())
    finally:
        logger.removeHandler(capture)
        logger.setLevel(old_level)
    assert capture.lines, "nothing was logged: the check would prove nothing"
    text = "\n".join(capture.lines)
    assert sim.config.client_secret not in text and sim.config.refresh_token not in text
    assert not any(token in text for token in sim.state.tokens)


# -- rate limits and errors ------------------------------------------------------------------------------------------


async def test_a_429_without_retry_after_is_backed_off_and_retried(sim: GotoSimulator, goto: GotoClient) -> None:
    await goto.list_trainings()
    sim.state.inject_fault(429, count=2, path="/trainings")
    assert await goto.list_trainings() == []


async def test_gotos_own_limit_is_met_with_backoff(sim: GotoSimulator) -> None:
    # Our bucket set above GoTo's 10 a second, so GoTo's own 429s (no Retry-After) are met and backed off.
    client = _client(sim, rate_limit_per_second=50)
    await client.list_trainings()
    results = [await client.list_trainings(budget=BULK) for _ in range(25)]
    assert results == [[]] * 25
    await client.aclose()


async def test_the_client_side_quota_keeps_under_gotos_limit(sim: GotoSimulator, goto: GotoClient) -> None:
    sim.reset(start=T0, record_exchanges=True)
    await goto.list_trainings()
    started = time.monotonic()
    for _ in range(15):
        await goto.list_trainings()
    assert time.monotonic() - started >= 0.5  # held back by our own bucket ...
    assert all(x["status"] == 200 for x in sim.state.exchanges)  # ... so GoTo never said 429


async def test_a_persistent_429_gives_up_with_gotos_words(sim: GotoSimulator, goto: GotoClient) -> None:
    await goto.list_trainings()
    sim.state.inject_fault(429, count=50, path="/trainings")
    with pytest.raises(ProviderApiError, match="limiting this account's API calls") as caught:
        await goto.list_trainings()
    assert caught.value.transient and caught.value.code == "InjectedFailure"
    assert "GoTo said: Injected failure. (GoTo incident " in caught.value.message


async def test_an_int_err_code_body_is_explained(goto: GotoClient) -> None:
    with pytest.raises(ProviderApiError, match="does not exist at GoTo") as caught:
        await goto.get_training("123")
    assert caught.value.http_status == 404 and caught.value.code == "NotFound"
    assert caught.value.provider_message == "The requested training could not be found."


async def test_an_error_description_body_is_explained_with_its_incident(sim: GotoSimulator,
                                                                       goto: GotoClient) -> None:
    sim.state.inject_fault(400, path="/trainings", method="POST")
    with pytest.raises(ProviderApiError, match="GoTo says the request is invalid: Injected failure. "
                                               r"\(GoTo incident [0-9a-f]{16}\) \[InjectedFailure\]"):
        await goto.create_training(_training())


async def test_a_refused_training_says_why(goto: GotoClient) -> None:
    with pytest.raises(ProviderApiError, match="timeZone Mars/Olympus is not a valid time zone id") as caught:
        await goto.create_training(_training(timeZone="Mars/Olympus"))
    assert not caught.value.transient


async def test_a_training_is_created_once_and_answered_as_its_key(sim: GotoSimulator, goto: GotoClient) -> None:
    key = await goto.create_training(_training())
    assert key in sim.state.trainings and len(sim.state.trainings) == 1
    assert (await goto.get_training(key))["name"] == "Safety basics"
    assert (await goto.update_times(key, "UTC", _training()["times"])) == {"notifiedRegistrants": 0,
                                                                           "notifiedTrainers": 0}


async def test_deleting_twice_is_fine_when_asked(goto: GotoClient) -> None:
    key = await goto.create_training(_training())
    await goto.delete_training(key)
    await goto.delete_training(key, missing_ok=True)
    with pytest.raises(ProviderApiError):
        await goto.delete_training(key)
