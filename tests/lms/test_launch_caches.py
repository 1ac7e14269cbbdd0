"""The launch path reads the calling connection and the session through short-lived caches (app.read_cache). A
change made in this process takes effect at once; every secret is still checked and every wrong one counted; the
answers are the ones the uncached path gives."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Db, Lms, b64, session_body
from viltbridge.app import connections
from viltbridge.config import Settings
from viltbridge.web.app import create_app

LEARNER = "learner@example.com"


def cached_launch(lms: Lms, session_id: str = "sess-1") -> None:
    """A launch that succeeds, leaving the caller and the session in the caches."""
    assert lms.launch(session_id, LEARNER).status_code == 200


def test_a_deactivated_connection_is_refused_at_once(lms: Lms, connection: dict[str, str], db: Db) -> None:
    assert lms.create_session(session_body()).status_code == 200
    cached_launch(lms)
    with db.session() as s, s.begin():
        connections.set_active(s, connection["name"], False)
    refused = lms.launch("sess-1", LEARNER)
    assert refused.status_code == 403 and "deactivated" in refused.json()["error"]["message"]
    with db.session() as s, s.begin():
        connections.set_active(s, connection["name"], True)
    assert lms.launch("sess-1", LEARNER).status_code == 200


def test_a_rotated_secret_works_at_once_and_the_old_one_stops(client: TestClient, lms: Lms,
                                                              connection: dict[str, str], db: Db) -> None:
    assert lms.create_session(session_body()).status_code == 200
    cached_launch(lms)
    token = client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": connection["username"],
                                               "client_secret": connection["password"]}).json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/session/sess-1/user/{b64(LEARNER)}/url", headers=bearer).status_code == 200
    with db.session() as s, s.begin():
        rotated = connections.rotate_secret(s, connection["name"])
    assert lms.launch("sess-1", LEARNER).status_code == 401
    assert client.get(f"/session/sess-1/user/{b64(LEARNER)}/url", headers=bearer).status_code == 401
    renewed = Lms(client, connection["username"], rotated.password)
    assert renewed.launch("sess-1", LEARNER).status_code == 200


def test_a_cancelled_session_gets_no_launch_url_at_once_and_a_saved_one_gets_one_again(lms: Lms) -> None:
    assert lms.create_session(session_body(Title="Safety basics")).status_code == 200
    cached_launch(lms)
    assert lms.cancel_session("sess-1").status_code == 200
    refused = lms.launch("sess-1", LEARNER)
    assert refused.status_code == 400 and "cancelled" in refused.json()["error"]["message"]
    assert lms.update_session("sess-1", session_body(Title="Safety basics, again")).status_code == 200
    cached_launch(lms)


def test_an_edited_session_is_read_afresh(lms: Lms) -> None:
    assert lms.create_session(session_body(Title="First title")).status_code == 200
    cached_launch(lms)
    assert lms.update_session("sess-1", session_body(Title="Second title")).status_code == 200
    assert lms.cancel_session("sess-1").status_code == 200
    assert "'Second title' was cancelled" in lms.launch("sess-1", LEARNER).json()["error"]["message"]


def test_a_session_saved_after_a_miss_is_found_at_once(lms: Lms) -> None:
    assert lms.launch("sess-1", LEARNER).status_code == 404  # "not known" is cached too
    assert lms.create_session(session_body()).status_code == 200
    cached_launch(lms)


def test_answers_are_the_same_from_the_cache(lms: Lms) -> None:
    assert lms.create_session(session_body()).status_code == 200
    first, again = lms.launch("sess-1", LEARNER), lms.launch("sess-1", LEARNER)
    assert first.status_code == again.status_code == 200
    assert first.json().keys() == again.json().keys()
    assert first.json()["data"]["joinUrl"].split("/l/")[0] == again.json()["data"]["joinUrl"].split("/l/")[0]
    for unknown in ("nobody-knows", "sess-2"):
        first, again = lms.launch(unknown, LEARNER), lms.launch(unknown, LEARNER)
        assert first.status_code == again.status_code == 404
        assert first.json()["error"] == again.json()["error"]


LIMIT = 3


@pytest.fixture
def strict_client(settings: Settings, clock: Any) -> Iterator[TestClient]:
    strict = settings.model_copy(update={"auth_failure_limit": LIMIT, "auth_failure_window_seconds": 300})
    with TestClient(create_app(strict, clock=clock, public_url="http://testserver"), follow_redirects=False,
                    client=("198.51.100.7", 40000)) as test_client:
        yield test_client


def test_wrong_secrets_are_counted_when_the_caller_is_cached(strict_client: TestClient, db: Db) -> None:
    acme = db.create_connection("acme")
    lms = Lms(strict_client, "acme", acme["password"])
    assert lms.create_session(session_body()).status_code == 200
    cached_launch(lms)
    wrong = Lms(strict_client, "acme", "wrong-secret-guess")
    for _ in range(LIMIT):
        assert wrong.launch("sess-1", LEARNER).status_code == 401
    assert lms.launch("sess-1", LEARNER).status_code == 429
