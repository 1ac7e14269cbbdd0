"""Replayed webhook deliveries: through `POST /webhooks/{connection}` a delivery sent again is never recorded twice,
and where the provider dates its signature (Zoom, JaaS) or its token (BigBlueButton) an old one is refused outright.
Webex signs without a date, so a replay can only be recognised (its dedupe key), not refused; Teams sends none."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from tests.conftest import NOW, Db
from tests.providers.fixtures import fixture_bytes, fixture_json
from viltbridge.providers.jitsi import webhooks as jaas
from viltbridge.web.webhooks import NOT_VERIFIED

ZOOM_SECRET = "zoom-webhook-secret-token"
WEBEX_SECRET = "webex-webhook-secret"
JAAS_SECRET = "jaas-webhook-secret"
BBB_SECRET = "bbb-shared-secret-" + "0123456789abcdef" * 3  # HS512 wants 64 bytes


def jaas_private_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def zoom_delivery(signed_at: int) -> tuple[bytes, dict[str, str]]:
    body = fixture_json("zoom", "signed_delivery_participant_joined.json")["body"]
    raw = body.encode()
    digest = hmac.new(ZOOM_SECRET.encode(), b"v0:%d:" % signed_at + raw, hashlib.sha256).hexdigest()
    return raw, {"x-zm-request-timestamp": str(signed_at), "x-zm-signature": f"v0={digest}",
                 "content-type": "application/json"}


def webex_delivery(_: int) -> tuple[bytes, dict[str, str]]:
    raw = fixture_bytes("webex", "webhook_participant_joined.json")
    return raw, {"X-Spark-Signature": hmac.new(WEBEX_SECRET.encode(), raw, hashlib.sha1).hexdigest(),
                 "content-type": "application/json"}


def jaas_delivery(signed_at: int) -> tuple[bytes, dict[str, str]]:
    raw = fixture_bytes("jitsi", "participant_joined.json")
    return raw, {jaas.SIGNATURE_HEADER: jaas.signature_header(raw, JAAS_SECRET, signed_at),
                 "content-type": "application/json"}


def bbb_delivery(signed_at: int) -> tuple[bytes, dict[str, str]]:
    raw = fixture_bytes("bbb", "analytics_callback.json")
    token = jwt.encode({"exp": signed_at + 24 * 3600}, BBB_SECRET, algorithm="HS512")  # BBB's tokens live a day
    return raw, {"Authorization": f"Bearer {token}", "content-type": "application/json"}


PROVIDERS: dict[str, tuple[Callable[[], dict[str, str]], Callable[[int], tuple[bytes, dict[str, str]]], int | None]] = {
    # kind: (settings, a signed delivery dated `signed_at`, seconds after which a replay is refused)
    "zoom": (lambda: {"account_id": "acct", "client_id": "cid", "client_secret": "client-secret-zoom",
                      "webhook_secret_token": ZOOM_SECRET}, zoom_delivery, 5 * 60),
    "webex": (lambda: {"client_id": "cid", "client_secret": "client-secret-webex", "refresh_token": "refresh-x",
                       "webhook_secret": WEBEX_SECRET}, webex_delivery, None),
    "jitsi": (lambda: {"deployment": "jaas", "app_id": "vpaas-magic-cookie-c2824d584eac4489a1e32e4e164d5a3c",
                       "key_id": "vpaas-magic-cookie-c2824d584eac4489a1e32e4e164d5a3c/abc123",
                       "private_key": jaas_private_key(), "webhook_secret": JAAS_SECRET}, jaas_delivery, 5 * 60),
    "bbb": (lambda: {"server_url": "https://bbb.example.org/bigbluebutton/", "shared_secret": BBB_SECRET},
            bbb_delivery, 24 * 3600),
}


def stored_events(db: Db) -> int:
    with db.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT COUNT(*) FROM provider_events").scalar_one())


@pytest.mark.parametrize("kind", sorted(PROVIDERS))
def test_a_delivery_sent_again_is_recorded_once(kind: str, client: TestClient, db: Db) -> None:
    settings, delivery, _ = PROVIDERS[kind]
    db.create_connection(f"acme-{kind}", kind, **settings())
    raw, headers = delivery(int(NOW.timestamp()))
    first = client.post(f"/webhooks/acme-{kind}", content=raw, headers=headers)
    assert first.status_code == 200, first.text
    assert stored_events(db) == 1
    again = client.post(f"/webhooks/acme-{kind}", content=raw, headers=headers)
    assert again.status_code == 200, again.text
    assert stored_events(db) == 1


@pytest.mark.parametrize("kind", sorted(kind for kind, (_, _, window) in PROVIDERS.items() if window))
def test_a_delivery_signed_too_long_ago_is_refused(kind: str, client: TestClient, db: Db) -> None:
    settings, delivery, window = PROVIDERS[kind]
    assert window is not None
    db.create_connection(f"acme-{kind}", kind, **settings())
    raw, headers = delivery(int((NOW - timedelta(seconds=window + 60)).timestamp()))
    replayed = client.post(f"/webhooks/acme-{kind}", content=raw, headers=headers)
    assert replayed.status_code == 403, replayed.text
    assert stored_events(db) == 0


def test_teams_takes_no_deliveries(client: TestClient, db: Db) -> None:
    db.create_connection("acme-teams", "teams", tenant_id="tenant", client_id="cid", client_secret="client-secret")
    answer = client.post("/webhooks/acme-teams", content=b"{}", headers={"content-type": "application/json"})
    assert answer.status_code == 403
    assert answer.json() == {"error": NOT_VERIFIED}


def test_an_unverified_delivery_learns_nothing_about_the_connection(client: TestClient, db: Db) -> None:
    """No such connection, a deactivated one, a provider that sends no webhooks, a wrong signature: one answer."""
    settings, delivery, _ = PROVIDERS["zoom"]
    db.create_connection("acme-zoom", "zoom", **settings())
    db.create_connection("old-zoom", "zoom", **settings())
    with db.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE connections SET active = false WHERE name = 'old-zoom'")
    db.create_connection("acme-link", "link")
    raw, headers = delivery(int(NOW.timestamp()))
    wrong = {**headers, "x-zm-signature": "v0=" + "0" * 64}
    answers = {
        (name, signature): client.post(f"/webhooks/{name}", content=raw, headers=sent)
        for name in ("acme-zoom", "old-zoom", "acme-link", "nobody", "n%00b")
        for signature, sent in (("wrong", wrong), ("none", {"content-type": "application/json"}))
    }
    seen = {(answer.status_code, answer.text) for answer in answers.values()}
    assert seen == {(403, json.dumps({"error": NOT_VERIFIED}, separators=(",", ":")))}, answers
    assert stored_events(db) == 0


def test_a_signed_delivery_to_a_deactivated_connection_is_refused_saying_why(client: TestClient, db: Db) -> None:
    settings, delivery, _ = PROVIDERS["zoom"]
    db.create_connection("old-zoom", "zoom", **settings())
    with db.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE connections SET active = false WHERE name = 'old-zoom'")
    raw, headers = delivery(int(NOW.timestamp()))
    answer = client.post("/webhooks/old-zoom", content=raw, headers=headers)
    assert answer.status_code == 403 and "deactivated" in answer.json()["error"]
    assert stored_events(db) == 0


def signed_zoom(raw: bytes) -> dict[str, str]:
    signed_at = int(NOW.timestamp())
    digest = hmac.new(ZOOM_SECRET.encode(), b"v0:%d:" % signed_at + raw, hashlib.sha256).hexdigest()
    return {"x-zm-request-timestamp": str(signed_at), "x-zm-signature": f"v0={digest}",
            "content-type": "application/json"}


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16", "utf-16-be", "utf-32"])
def test_a_correctly_signed_delivery_in_utf16_or_utf32_is_refused_not_stored(client: TestClient, db: Db,
                                                                             encoding: str) -> None:
    settings, delivery, _ = PROVIDERS["zoom"]
    db.create_connection("acme-zoom", "zoom", **settings())
    raw = delivery(int(NOW.timestamp()))[0].decode("utf-8").encode(encoding)
    answer = client.post("/webhooks/acme-zoom", content=raw, headers=signed_zoom(raw))
    assert answer.status_code == 400, answer.text
    assert "UTF-8" in answer.json()["error"]
    deep = ('{"event":"meeting.participant_joined","payload":' + "[" * 5_000 + "]" * 5_000 + "}").encode(encoding)
    answer = client.post("/webhooks/acme-zoom", content=deep, headers=signed_zoom(deep))
    assert answer.status_code == 400, answer.text
    assert stored_events(db) == 0


@pytest.mark.parametrize("escape", ["\\u0000", "\\ud800"])
def test_a_correctly_signed_delivery_holding_text_no_database_stores_is_refused(client: TestClient, db: Db,
                                                                                escape: str) -> None:
    settings, delivery, _ = PROVIDERS["zoom"]
    db.create_connection("acme-zoom", "zoom", **settings())
    document = json.loads(delivery(int(NOW.timestamp()))[0])
    raw = json.dumps(document).replace('"meeting.participant_joined"', f'"meeting.participant_joined{escape}"')
    raw = raw.replace('"payload": {', f'"payload": {{"x{escape}": 1, ', 1).encode()
    answer = client.post("/webhooks/acme-zoom", content=raw, headers=signed_zoom(raw))
    assert answer.status_code == 400, answer.text
    assert "cannot be stored" in answer.json()["error"]
    assert stored_events(db) == 0


def test_a_bbb_token_is_not_a_signature_of_the_body(client: TestClient, db: Db) -> None:
    """BBB's callback token (a JWT with only `exp`) does not cover the body: a captured token would carry another
    body until it expires. What the ledger can do is keep each run once: a forged second body for the same run
    changes nothing. (Documented in docs/decisions.md; TLS is what keeps the token from being captured.)"""
    settings, delivery, _ = PROVIDERS["bbb"]
    db.create_connection("acme-bbb", "bbb", **settings())
    raw, headers = delivery(int(NOW.timestamp()))
    assert client.post("/webhooks/acme-bbb", content=raw, headers=headers).status_code == 200
    forged = json.loads(raw)
    forged["data"]["attendees"] = []
    answer = client.post("/webhooks/acme-bbb", content=json.dumps(forged).encode(), headers=headers)
    assert answer.status_code == 200 and stored_events(db) == 1
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT raw FROM provider_events").scalar_one() == raw.decode()

