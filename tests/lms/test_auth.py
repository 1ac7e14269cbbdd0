"""Basic and OAuth client-credentials authentication, and deactivated connections."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Db, Lms, b64, session_body

CONTRACT_CALLS = [
    ("POST", "/session", session_body()),
    ("PUT", "/session/sess-1", session_body()),
    ("DELETE", "/session/sess-1", None),
    ("GET", f"/session/sess-1/user/{b64('a@example.com')}/url", None),
    ("GET", "/session/sess-1/attendees", None),
    ("GET", "/session/sess-1/extendedoptions", None),
    ("POST", "/instructor", {"Email": "i@example.com", "FirstName": "I", "LastName": "N"}),
    ("PUT", "/instructor", {"OldEmail": "i@example.com", "NewEmail": "i@example.com", "FirstName": "I",
                            "LastName": "N"}),
]


@pytest.mark.parametrize("method, path, body", CONTRACT_CALLS)
def test_every_contract_call_needs_credentials(client: TestClient, connection, db: Db, method, path, body) -> None:
    before = db.snapshot()
    for auth in (None, (connection["username"], "wrong-secret"), ("nobody", connection["password"])):
        response = client.request(method, path, json=body, auth=auth)
        assert response.status_code == 401, (auth, response.text)
        assert response.json()["error"]["code"] == 401
        assert response.headers["www-authenticate"].startswith("Basic")
    assert db.snapshot() == before


@pytest.mark.parametrize("method, path, body", CONTRACT_CALLS)
def test_a_deactivated_connection_gets_403_saying_so(client: TestClient, connection, db: Db, method, path,
                                                     body) -> None:
    from viltbridge.app import connections

    with db.session() as s, s.begin():
        connections.set_active(s, connection["name"], False)
    before = db.snapshot()
    response = client.request(method, path, json=body, auth=(connection["username"], connection["password"]))
    assert response.status_code == 403
    assert "deactivated" in response.json()["error"]["message"]
    assert db.snapshot() == before


def test_connections_are_isolated_from_each_other(client: TestClient, db: Db) -> None:
    first = db.create_connection("first")
    second = db.create_connection("second")
    one, two = Lms(client, first["username"], first["password"]), Lms(client, second["username"], second["password"])
    assert one.create_session(session_body("shared-id", Title="One")).status_code == 200
    assert two.launch("shared-id", "a@example.com").status_code == 404
    assert two.create_session(session_body("shared-id", Title="Two")).status_code == 200
    assert one.launch("shared-id", "a@example.com").status_code == 200


@pytest.mark.parametrize("style", ["form", "json", "basic"])
def test_oauth_client_credentials_then_bearer(client: TestClient, connection, style: str) -> None:
    username, password = connection["username"], connection["password"]
    if style == "form":
        response = client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": username,
                                                     "client_secret": password, "scope": "vilt"})
    elif style == "json":
        response = client.post("/oauth/token", json={"grant_type": "client_credentials", "client_id": username,
                                                     "client_secret": password})
    else:
        response = client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(username, password))
    assert response.status_code == 200, response.text
    token = response.json()
    assert token["token_type"] == "Bearer" and token["expires_in"] > 0
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    assert client.post("/session", json=session_body(), headers=headers).status_code == 200
    assert client.get(f"/session/sess-1/user/{b64('a@example.com')}/url", headers=headers).status_code == 200


def test_oauth_errors_follow_rfc_6749(client: TestClient, connection) -> None:
    wrong = client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": connection["username"],
                                              "client_secret": "nope"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    grant = client.post("/oauth/token", data={"grant_type": "password"})
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
    missing = client.post("/oauth/token", data={"grant_type": "client_credentials"})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


def test_a_forged_or_foreign_bearer_token_is_refused(client: TestClient, connection, settings) -> None:
    from viltbridge.security.crypto import sign_access_token

    forged = sign_access_token(1, "0" * 16, 4_000_000_000, [b"k" * 32])
    response = client.get("/session/x/attendees", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    server_keys = client.app.state.ctx.access_token_keys
    expired = sign_access_token(1, "0" * 16, 1, server_keys)
    assert client.get("/session/x/attendees", headers={"Authorization": f"Bearer {expired}"}).status_code == 401


def test_rotating_the_secret_revokes_issued_tokens(client: TestClient, connection, db: Db) -> None:
    from viltbridge.app import connections

    token = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                        auth=(connection["username"], connection["password"])).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/session/x/extendedoptions", headers=headers).status_code == 200
    with db.session() as s, s.begin():
        connections.rotate_secret(s, connection["name"])
    refused = client.get("/session/x/extendedoptions", headers=headers)
    assert refused.status_code == 401 and "request a new one" in refused.json()["error"]["message"]


def test_a_deactivated_connection_gets_no_token(client: TestClient, connection, db: Db) -> None:
    from viltbridge.app import connections

    with db.session() as s, s.begin():
        connections.set_active(s, connection["name"], False)
    response = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                           auth=(connection["username"], connection["password"]))
    assert response.status_code == 403


def test_health_needs_no_credentials(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["database"] == "ok"


def test_callers_are_authenticated_before_their_bodies_are_read(client: TestClient, connection, db: Db) -> None:
    from viltbridge.app import connections

    bad = session_body(TimeZone={"UTCOffset": "banana"})
    anonymous = client.post("/session", json=bad)
    assert anonymous.status_code == 401 and "banana" not in anonymous.text
    with db.session() as s, s.begin():
        connections.set_active(s, connection["name"], False)
    deactivated = client.post("/session", json=bad, auth=(connection["username"], connection["password"]))
    assert deactivated.status_code == 403
    launch = client.get("/session/x/user/not-base64!/url", auth=("nobody", "x"))
    assert launch.status_code == 401
