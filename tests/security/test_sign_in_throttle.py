"""Brute-force throttle: past the failure limit per client address (and account), sign-in attempts are answered 429
without checking any password; other accounts, other addresses and successful sign-ins are not affected."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from tests.conftest import NOW, Db, service_unavailable
from tests.web.test_console_access import make_user, sign_in
from viltbridge.app import console_users
from viltbridge.app.console_users import ConsoleRole
from viltbridge.config import Settings
from viltbridge.web.app import create_app

LIMIT = 3
REDIS_URL = "redis://127.0.0.1:6379/13"


@pytest.fixture
def strict(settings: Settings) -> Settings:
    return settings.model_copy(update={"auth_failure_limit": LIMIT, "auth_failure_window_seconds": 300})


@pytest.fixture
def client(strict: Settings, clock: Any) -> Iterator[TestClient]:
    with TestClient(create_app(strict, clock=clock, public_url="http://testserver"), follow_redirects=False,
                    client=("198.51.100.7", 40000)) as test_client:
        yield test_client


def attendees(client: TestClient, username: str, password: str, **headers: str) -> Any:
    return client.get("/session/s-1/attendees", auth=(username, password), headers=headers)


def test_lms_wrong_secrets_past_the_limit_get_429_even_with_the_right_one(client: TestClient, db: Db,
                                                                         clock: Any) -> None:
    acme = db.create_connection("acme")
    for _ in range(LIMIT):
        assert attendees(client, "acme", "wrong-secret-guess").status_code == 401
    refused = attendees(client, "acme", acme["password"])
    assert refused.status_code == 429
    body = refused.json()
    assert body["error"]["code"] == 429 and body["status"] != "Success"
    assert "Correct the username and password entered for this vendor in Cornerstone Edge" in body["error"]["message"]
    assert 0 < int(refused.headers["Retry-After"]) <= 300
    clock.set(NOW + timedelta(seconds=301))
    assert attendees(client, "acme", acme["password"]).status_code == 404  # checked again: no such session yet


def test_one_accounts_failures_block_neither_other_accounts_nor_other_addresses(client: TestClient, db: Db,
                                                                                strict: Settings, clock: Any) -> None:
    db.create_connection("acme")
    globex = db.create_connection("globex")
    for _ in range(LIMIT):
        attendees(client, "acme", "wrong-secret-guess")
    assert attendees(client, "acme", "wrong-secret-guess").status_code == 429
    assert attendees(client, "globex", globex["password"]).status_code == 404  # another tenant, same address
    with TestClient(client.app, client=("203.0.113.9", 40000)) as elsewhere:
        assert attendees(elsewhere, "acme", "wrong-secret-guess").status_code == 401  # another address: counted


def test_one_address_trying_many_accounts_is_stopped_too(client: TestClient, db: Db) -> None:
    globex = db.create_connection("globex")
    for n in range(LIMIT * 10):  # the per-address limit: ten times the per-account one
        assert attendees(client, f"guess-{n}", "wrong-secret-guess").status_code == 401
    assert attendees(client, "globex", globex["password"]).status_code == 429


def test_oauth_token_failures_count_with_basic_ones(client: TestClient, db: Db) -> None:
    acme = db.create_connection("acme")
    for _ in range(LIMIT - 1):
        attendees(client, "acme", "wrong-secret-guess")
    wrong = client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "acme",
                                              "client_secret": "wrong-secret-guess"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    refused = client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "acme",
                                                "client_secret": acme["password"]})
    assert refused.status_code == 429 and refused.json()["error"] == "temporarily_unavailable"
    assert int(refused.headers["Retry-After"]) > 0 and "Cornerstone Edge" in refused.json()["error_description"]


def test_successful_sign_ins_are_never_counted(client: TestClient, db: Db) -> None:
    acme = db.create_connection("acme")
    for _ in range(LIMIT * 3):
        assert attendees(client, "acme", acme["password"]).status_code == 404
    assert attendees(client, "acme", "wrong-secret-guess").status_code == 401


def test_forwarded_for_counts_only_behind_a_trusted_proxy(strict: Settings, db: Db, clock: Any) -> None:
    acme = db.create_connection("acme")
    behind_proxy = strict.model_copy(update={"trusted_proxies": "10.0.0.0/24"})
    with TestClient(create_app(behind_proxy, clock=clock), client=("10.0.0.2", 40000)) as proxy:
        for _ in range(LIMIT):
            attendees(proxy, "acme", "wrong-secret-guess", **{"X-Forwarded-For": "192.0.2.1, 198.51.100.7"})
        assert attendees(proxy, "acme", acme["password"],
                         **{"X-Forwarded-For": "198.51.100.7"}).status_code == 429
        assert attendees(proxy, "acme", acme["password"],  # another client behind the same proxy
                         **{"X-Forwarded-For": "198.51.100.8"}).status_code == 404
    with TestClient(create_app(strict, clock=clock), client=("198.51.100.7", 40000)) as direct:
        for n in range(LIMIT):  # an untrusted peer cannot pick its address by header
            attendees(direct, "acme", "wrong-secret-guess", **{"X-Forwarded-For": f"192.0.2.{n + 10}"})
        assert attendees(direct, "acme", acme["password"], **{"X-Forwarded-For": "192.0.2.99"}).status_code == 429


def test_console_sign_in_is_throttled_per_address_with_a_page_that_says_so(client: TestClient, db: Db) -> None:
    make_user(db, "ada@example.com", ConsoleRole.INTEGRATIONS_MANAGE)
    assert LIMIT < console_users.MAX_FAILED_LOGINS  # the address is throttled before the account locks
    for _ in range(LIMIT):
        assert sign_in(client, "ada@example.com", "not the password").status_code == 401
    refused = sign_in(client, "ada@example.com")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins from your network address" in refused.text and "Wait 5 minutes" in refused.text
    assert "vb_console" not in refused.cookies


@pytest.fixture
def shared_redis(strict: Settings) -> Settings:
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        service_unavailable(f"Redis at {REDIS_URL} is unreachable: {exc.__class__.__name__}")
    return strict.model_copy(update={"rate_limit_url": REDIS_URL})


def test_processes_sharing_redis_share_the_count(shared_redis: Settings, db: Db, clock: Any) -> None:
    acme = db.create_connection("acme")
    user = acme["username"]  # counters are keyed under this test's own server key: no other run shares them
    with TestClient(create_app(shared_redis, clock=clock), client=("198.51.100.7", 1)) as first, \
            TestClient(create_app(shared_redis, clock=clock), client=("198.51.100.7", 2)) as second:
        for _ in range(LIMIT):
            assert attendees(first, user, "wrong-secret-guess").status_code == 401
        assert attendees(first, user, acme["password"]).status_code == 429
        # The second process checks one more attempt: the failure it counts tells it the address is over the limit.
        assert attendees(second, user, "wrong-secret-guess").status_code == 401
        assert attendees(second, user, acme["password"]).status_code == 429
