"""SSRF guard: provider URLs must be https to public addresses, unless allow-listed or (for simulators) loopback is
explicitly allowed; checked when settings are saved and again when each connection to the provider is opened."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Db, session_body
from tests.providers.bbb.conftest import COHOST, HOST
from tests.providers.conftest import meeting_spec
from tests.web.test_console_access import csrf_of, make_user, sign_in
from viltbridge.app.console_users import ConsoleRole
from viltbridge.config import Settings
from viltbridge.providers.bbb.adapter import BbbProvider
from viltbridge.providers.bbb.simulator import BbbSimulator
from viltbridge.providers.http import ProviderUrlRefused
from viltbridge.providers.url_guard import UrlPolicy, guard_provider_urls
from viltbridge.web.app import create_app

SECRET = "bbb-shared-secret-for-the-guard-test"


@pytest.fixture
def strict_cli(run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    monkeypatch.setenv("VILTBRIDGE_PROVIDER_ALLOW_LOOPBACK", "0")
    monkeypatch.delenv("VILTBRIDGE_PROVIDER_HOST_ALLOW_LIST", raising=False)
    return run


@pytest.mark.parametrize(("server_url", "why"), [
    ("http://bbb.example.org/bigbluebutton/", "must start with https://"),
    ("https://127.0.0.1:8443/bigbluebutton/", "loopback, private or link-local"),
    ("https://localhost/bigbluebutton/", "localhost resolves to"),
    ("https://10.1.2.3/bigbluebutton/", "loopback, private or link-local"),
    ("https://[::ffff:192.168.0.5]/bigbluebutton/", "loopback, private or link-local"),
    ("https://169.254.169.254/latest/", "cloud metadata address"),
])
def test_saving_a_url_to_an_internal_address_is_refused_naming_the_setting(
        strict_cli: Callable[..., Any], server_url: str, why: str) -> None:
    refused = strict_cli("connection", "create", "acme-bbb", "--provider", "bbb", f"--set=server_url={server_url}",
                         f"--set=shared_secret={SECRET}", ok=False)
    assert refused.exit_code == 1
    message = " ".join(refused.output.split())
    assert "server_url" in message and why in message, message
    assert "VILTBRIDGE_PROVIDER_HOST_ALLOW_LIST" in message
    assert "acme-bbb" not in strict_cli("connection", "list").output


def test_changing_a_url_is_checked_too(strict_cli: Callable[..., Any]) -> None:
    strict_cli("connection", "create", "acme-bbb", "--provider", "bbb",
               "--set=server_url=https://bbb.example.org/bigbluebutton/", f"--set=shared_secret={SECRET}")
    refused = strict_cli("connection", "set", "acme-bbb", "server_url=http://127.0.0.1:9/bigbluebutton/", ok=False)
    assert refused.exit_code == 1 and "server_url" in refused.output
    assert "bbb.example.org" in strict_cli("connection", "show", "acme-bbb").output


def test_the_allow_list_admits_named_hosts_and_networks_with_http(strict_cli: Callable[..., Any],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VILTBRIDGE_PROVIDER_HOST_ALLOW_LIST", "bbb.intranet.test, 10.20.0.0/16")
    strict_cli("connection", "create", "by-network", "--provider", "bbb",
               "--set=server_url=http://10.20.1.5/bigbluebutton/", f"--set=shared_secret={SECRET}")
    strict_cli("connection", "create", "by-name", "--provider", "bbb",
               "--set=server_url=http://bbb.intranet.test/bigbluebutton/", f"--set=shared_secret={SECRET}")
    outside = strict_cli("connection", "create", "outside", "--provider", "bbb",
                         "--set=server_url=https://10.30.1.5/bigbluebutton/", f"--set=shared_secret={SECRET}",
                         ok=False)
    assert "loopback, private or link-local" in " ".join(outside.output.split())


def test_metadata_addresses_stay_refused_with_loopback_allowed(run: Callable[..., Any],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VILTBRIDGE_PROVIDER_ALLOW_LOOPBACK", "1")
    run("connection", "create", "simulated", "--provider", "bbb",
        "--set=server_url=http://127.0.0.1:9/bigbluebutton/", f"--set=shared_secret={SECRET}")
    refused = run("connection", "create", "metadata", "--provider", "bbb",
                  "--set=server_url=http://169.254.169.254/bigbluebutton/", f"--set=shared_secret={SECRET}", ok=False)
    assert "cloud metadata address" in " ".join(refused.output.split())


@pytest.fixture
def policy() -> Iterator[Callable[[UrlPolicy], None]]:
    previous = guard_provider_urls(None)
    yield guard_provider_urls
    guard_provider_urls(previous)


def meeting() -> Any:
    return meeting_spec(HOST, COHOST)()


@pytest.mark.pure
async def test_a_stored_url_to_an_internal_address_is_refused_when_called(sim: BbbSimulator,
                                                                           policy: Callable[[UrlPolicy], None]) -> None:
    """An old row, or a name whose DNS answer changed after it was saved: the call is checked when it connects."""
    policy(UrlPolicy(allow_loopback=False))
    adapter = BbbProvider.from_settings(sim.settings(server_url=sim.server_url.replace("127.0.0.1", "localhost")
                                                     .replace("http://", "https://")))
    try:
        with pytest.raises(ProviderUrlRefused) as refused:
            await adapter.create_meeting(meeting())
    finally:
        await adapter.aclose()
    assert "localhost resolves to 127.0.0.1" in refused.value.message
    assert not refused.value.transient and not refused.value.sent
    assert sim.state.meeting_ids() == []


@pytest.mark.pure
async def test_the_allow_list_lets_calls_reach_a_listed_network(sim: BbbSimulator,
                                                                policy: Callable[[UrlPolicy], None]) -> None:
    policy(UrlPolicy.parse(False, "127.0.0.0/8"))
    adapter = BbbProvider.from_settings(sim.settings())
    try:
        await adapter.create_meeting(meeting())
    finally:
        await adapter.aclose()
    assert len(sim.state.meeting_ids()) == 1


def test_an_lms_save_against_a_refused_url_fails_and_says_what_to_do(settings: Settings, db: Db, clock: Any,
                                                                     sim: BbbSimulator) -> None:
    credentials = db.create_connection("acme-bbb", "bbb", **sim.settings())  # saved while loopback was allowed
    strict = settings.model_copy(update={"provider_allow_loopback": False})
    with TestClient(create_app(strict, clock=clock)) as client:
        saved = client.post("/session", json=session_body("s-1", start=clock.now() + timedelta(days=1)),
                            auth=(credentials["username"], credentials["password"]))
    assert saved.status_code >= 400, saved.text
    message = saved.json()["error"]["message"]
    assert "http://" in message and "VILTBRIDGE_PROVIDER_ALLOW_LOOPBACK" in message
    assert sim.state.meeting_ids() == []


def test_the_console_refuses_an_internal_url_naming_the_setting(settings: Settings, db: Db, clock: Any) -> None:
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    strict = settings.model_copy(update={"provider_allow_loopback": False})
    with TestClient(create_app(strict, clock=clock), follow_redirects=False) as client:
        assert sign_in(client, "ada@example.com").status_code == 303
        csrf = csrf_of(client.get("/console/connections/new").text)
        refused = client.post("/console/connections/new", data={
            "name": "acme-bbb", "provider": "bbb", "csrf_token": csrf,
            "s.server_url": "https://127.0.0.1:8443/bigbluebutton/", "s.shared_secret": SECRET})
    assert refused.status_code == 400
    assert "server_url" in refused.text and "loopback, private or link-local" in refused.text
