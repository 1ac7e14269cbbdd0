"""The launch endpoint's fast path (web/launch_fast_path.py) answers exactly as the FastAPI route does: the same
requests, sent to an app with the fast path and to one without it, get the same status, headers and envelope
(the timestamp aside), for successes and for every kind of refusal."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy
from fastapi.testclient import TestClient

from tests.conftest import Db, Lms, b64, session_body
from viltbridge.app import connections, launches
from viltbridge.config import Settings
from viltbridge.web.app import create_app

LEARNER = "learner@example.com"
COMPARED_HEADERS = ("content-type", "www-authenticate", "retry-after", "allow")


@pytest.fixture
def both(settings: Settings, clock: Any) -> Iterator[tuple[TestClient, TestClient]]:
    fast = create_app(settings, clock=clock, public_url="http://testserver")
    routed = create_app(settings, clock=clock, public_url="http://testserver", launch_fast_path=False)
    with TestClient(fast, follow_redirects=False) as with_fast_path, \
            TestClient(routed, follow_redirects=False) as without:
        yield with_fast_path, without


def answer(response: Any) -> tuple[int, dict[str, str], Any]:
    headers = {name: response.headers[name] for name in COMPARED_HEADERS if name in response.headers}
    try:
        body = response.json()
    except ValueError:
        return response.status_code, headers, response.text
    if isinstance(body, dict):
        body.pop("timestamp", None)
        if re.fullmatch(r"[0-9a-f]{32}", str(body.get("correlationId"))):  # made up per request when none was sent
            body["correlationId"] = "<generated>"
        join_url = body.get("data", {}).get("joinUrl") if isinstance(body.get("data"), dict) else None
        if join_url:  # the signed token differs only by when it was signed
            body["data"]["joinUrl"] = re.sub(r"/l/[^/]+$", "/l/<token>", join_url)
    return response.status_code, headers, body


def same_answer(clients: tuple[TestClient, TestClient], method: str, path: str, **kwargs: Any) -> int:
    fast, routed = (answer(client.request(method, path, **kwargs)) for client in clients)
    assert fast == routed, (method, path, kwargs)
    return fast[0]


def test_launches_and_refusals_are_answered_the_same_with_and_without_the_fast_path(
        both: tuple[TestClient, TestClient], connection: dict[str, str], db: Db) -> None:
    fast, _ = both
    lms = Lms(fast, connection["username"], connection["password"])
    assert lms.create_session(session_body("sess-1")).status_code == 200
    assert lms.create_session(session_body("gone")).status_code == 200
    assert lms.cancel_session("gone").status_code == 200
    auth = (connection["username"], connection["password"])
    token = fast.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": auth[0],
                                            "client_secret": auth[1]}).json()["access_token"]
    slash_email = "x??@example.com"  # standard base64 of it holds "/"
    assert "/" in base64.b64encode(slash_email.encode()).decode()
    learner = b64(LEARNER)
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/session/sess-1/user/{learner}/url", {"auth": auth}),
        ("GET", f"/session/sess-1/user/{learner}/url", {"auth": auth, "headers": {"correlationId": "corr-42"}}),
        ("GET", f"/session/sess-1/user/{learner}/url", {"headers": {"Authorization": f"Bearer {token}"}}),
        ("GET", f"/session/sess-1/user/{learner}/url", {"headers": {"Authorization": "Bearer not-a-token"}}),
        ("GET", f"/session/sess-1/user/{learner}/url", {}),
        ("GET", f"/session/sess-1/user/{learner}/url", {"auth": (auth[0], "wrong-secret")}),
        ("GET", f"/session/sess-1/user/{learner}/url", {"auth": ("nobody", auth[1])}),
        ("GET", f"/session/sess-1/user/{base64.b64encode(slash_email.encode()).decode()}/url", {"auth": auth}),
        ("GET", f"/session/sess-1/user/{base64.urlsafe_b64encode(LEARNER.encode()).decode().rstrip('=')}/url",
         {"auth": auth}),
        ("GET", f"/session/sess-1/user/{learner.replace('=', '%3D')}/url", {"auth": auth}),
        ("GET", "/session/sess-1/user/not*base64/url", {"auth": auth}),
        ("GET", f"/session/sess-1/user/{b64('not-an-email')}/url", {"auth": auth}),
        ("GET", "/session/sess-1/user//url", {"auth": auth}),
        ("GET", f"/session/unknown/user/{learner}/url", {"auth": auth}),
        ("GET", f"/session/gone/user/{learner}/url", {"auth": auth}),
        ("GET", f"/session/{'x' * 250}/user/{learner}/url", {"auth": auth}),
        ("GET", f"/session/bad%01id/user/{learner}/url", {"auth": auth}),
        ("GET", f"/session/sess-1/user/{learner}/url/", {"auth": auth}),
        ("GET", f"/session/sess-1/user/{learner}/url", {"auth": auth, "headers": {"debug": "true"}}),
        ("POST", f"/session/sess-1/user/{learner}/url", {"auth": auth}),
        ("HEAD", f"/session/sess-1/user/{learner}/url", {"auth": auth}),
    ]
    statuses = [same_answer(both, method, path, **kwargs) for method, path, kwargs in calls]
    assert statuses.count(200) >= 5 and {400, 401, 404} <= set(statuses)  # the matrix covers what it means to
    with db.session() as s, s.begin():
        connections.set_active(s, connection["name"], False)
    assert same_answer(both, "GET", f"/session/sess-1/user/{learner}/url", auth=auth) == 403


def test_the_fast_path_answers_under_a_prefix(settings: Settings, clock: Any, db: Db) -> None:
    prefixed = settings.model_copy(update={"lms_path_prefix": "/cornerstone"})
    acme = db.create_connection("acme")
    auth = (acme["username"], acme["password"])
    with TestClient(create_app(prefixed, clock=clock, public_url="http://testserver")) as fast, \
            TestClient(create_app(prefixed, clock=clock, public_url="http://testserver",
                                  launch_fast_path=False)) as routed:
        lms = Lms(fast, *auth)
        assert lms.call("POST", "/cornerstone/session", json=session_body()).status_code == 200
        path = f"/cornerstone/session/sess-1/user/{b64(LEARNER)}/url"
        assert same_answer((fast, routed), "GET", path, auth=auth) == 200
        assert same_answer((fast, routed), "GET", path.removeprefix("/cornerstone"), auth=auth) == 404


@pytest.mark.parametrize("failure, status", [
    (RuntimeError("a bug"), 500),
    (sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("database down")), 503),
])
def test_a_failure_inside_the_launch_is_answered_the_same_with_and_without_the_fast_path(
        settings: Settings, clock: Any, connection: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        failure: Exception, status: int) -> None:
    """The fast path sits in front of Starlette's error middleware, so it answers an unexpected exception itself,
    as that middleware would: the catch-all 500 envelope, and the exception raised on for the server to log."""
    auth = (connection["username"], connection["password"])
    path = f"/session/sess-1/user/{b64(LEARNER)}/url"
    fast_app = create_app(settings, clock=clock, public_url="http://testserver")
    routed_app = create_app(settings, clock=clock, public_url="http://testserver", launch_fast_path=False)
    with TestClient(fast_app, raise_server_exceptions=False) as fast, \
            TestClient(routed_app, raise_server_exceptions=False) as routed:
        assert Lms(fast, *auth).create_session(session_body("sess-1")).status_code == 200

        async def failing(*_: Any) -> str:
            raise failure

        monkeypatch.setattr(launches, "launch_url", failing)
        headers = {"correlationId": "corr-7"}
        assert same_answer((fast, routed), "GET", path, auth=auth, headers=headers) == status
        assert fast.get(path, auth=auth, headers=headers).json()["correlationId"] == "corr-7"
    if status == 500:  # and raised on, as the route's is: the server logs it
        for app in (fast_app, routed_app):
            with TestClient(app) as raising, pytest.raises(RuntimeError, match="a bug"):
                raising.get(path, auth=auth)
