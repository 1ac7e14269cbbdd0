"""The analytics callback's JWT is checked (HS512 only, signature, expiry) and its attendees become segments."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.providers.fixtures import fixture_bytes
from viltbridge.core.errors import Forbidden
from viltbridge.providers.bbb import webhooks

SECRET = "8cd8ef52e8e101574e400365b55e11a6"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def token(claims: dict[str, object], *, alg: str = "HS512", secret: str = SECRET) -> str:
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    digest = {"HS512": hashlib.sha512, "HS256": hashlib.sha256}.get(alg, hashlib.sha512)
    return f"{head}.{body}.{b64(hmac.new(secret.encode(), f'{head}.{body}'.encode(), digest).digest())}"


def in_a_day() -> dict[str, object]:
    return {"exp": int((NOW + timedelta(hours=24)).timestamp())}


def test_a_good_token_passes() -> None:
    assert webhooks.verify_jwt(token(in_a_day()), SECRET, NOW) == in_a_day()


def test_a_bad_signature_is_refused() -> None:
    with pytest.raises(Forbidden, match="signature"):
        webhooks.verify_jwt(token(in_a_day(), secret="another-secret"), SECRET, NOW)


def test_an_expired_token_is_refused() -> None:
    with pytest.raises(Forbidden, match="expired"):
        webhooks.verify_jwt(token({"exp": int((NOW - timedelta(seconds=1)).timestamp())}), SECRET, NOW)


def test_a_token_without_expiry_is_refused() -> None:
    with pytest.raises(Forbidden, match="expired"):
        webhooks.verify_jwt(token({}), SECRET, NOW)


@pytest.mark.parametrize("alg", ["HS256", "none"])
def test_another_algorithm_is_refused(alg: str) -> None:
    with pytest.raises(Forbidden, match="HS512"):
        webhooks.verify_jwt(token(in_a_day(), alg=alg), SECRET, NOW)


@pytest.mark.parametrize("value", ["", "Basic abc", "Bearer "])
def test_a_missing_bearer_is_refused(value: str) -> None:
    with pytest.raises(Forbidden):
        webhooks.bearer_token({"Authorization": value} if value else {})


def test_rejoins_become_segments_and_a_missing_leave_ends_at_finish() -> None:
    body = {"version": "1.0", "meeting_id": "m1", "internal_meeting_id": "abc-1",
            "data": {"start": "2026-03-02T09:00:00.000+00:00", "finish": "2026-03-02T10:00:00.000+00:00",
                     "attendees": [{"ext_user_id": "u1", "name": "Ann", "moderator": False,
                                    "joins": ["2026-03-02T09:30:00.000+00:00", "2026-03-02T09:01:00.000+00:00"],
                                    "leaves": ["2026-03-02T09:10:00.000+00:00"]}]}}
    event = webhooks.callback_event(json.dumps(body).encode(), NOW)
    assert event.dedupe_key == "bbb:analytics-callback:abc-1"
    segments = webhooks.segments_from_events([event])
    assert [(s.joined_at.minute, s.left_at.minute if s.left_at else None) for s in segments] == [(1, 10), (30, 0)]
    assert segments[0].evidence["personal_id"] == "u1" and segments[0].instance == "abc-1"


def test_a_realistic_callback_fixture_becomes_segments_per_join() -> None:
    """The fixture carries what BBB really sends beyond what viltbridge reads (internal ids, engagement, files):
    only joins, leaves and the join's userID matter, and a guest's internal id ties them to no one."""
    raw = fixture_bytes("bbb", "analytics_callback.json")
    event = webhooks.callback_event(raw, NOW)
    assert event.occurred_at == datetime(2026, 3, 2, 10, 0, 41, tzinfo=UTC)
    segments = webhooks.segments_from_events([event])
    spans = [(s.evidence["personal_id"], s.joined_at.strftime("%H:%M"), s.left_at.strftime("%H:%M") if s.left_at
              else None, s.evidence["moderator"]) for s in segments]
    assert spans == [("vb-4d1f0c9a2b7e6d5c", "08:58", "10:00", True),
                     ("vb-9e8d7c6b5a4f3e2d", "09:01", "09:20", False), ("vb-9e8d7c6b5a4f3e2d", "09:24", "10:00", False),
                     ("w_xvz5h4bq9dcp", "09:30", "10:00", False)]  # no leave: until the meeting finished
    assert {s.instance for s in segments} == {"a1c7e5f0b3d2946e8f1a0c9b7d6e5f4a3b2c1d0e-1772442000123"}
