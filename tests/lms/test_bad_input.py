"""Every kind of bad input gets the right 4xx, a message a person can act on, and changes nothing."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.conftest import Db, Lms, b64, session_body


@pytest.fixture
def seeded(lms: Lms) -> Lms:
    assert lms.create_session(session_body("known")).status_code == 200
    assert lms.add_instructor("ins@example.com").status_code == 200
    return lms


def assert_refused(response: Any, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == ("ValidationError" if status < 500 else "SystemError")
    assert body["error"]["code"] == status
    assert body["correlationId"] == "corr-123"
    message = body["error"]["message"]
    assert "Traceback" not in message
    for word in words:
        assert word.lower() in message.lower(), message


BAD_SESSION_BODIES = {
    "missing title": ({k: v for k, v in session_body().items() if k != "Title"}, ["Title is required"]),
    "missing dates": ({k: v for k, v in session_body().items() if k not in ("DateBegin", "DateEnd")},
                      ["DateBegin is required", "DateEnd is required"]),
    "missing offset": (session_body(TimeZone={}), ["UTCOffset is required"]),
    "title wrong type": (session_body(Title=42), ["Title must be text"]),
    "timezone wrong type": (session_body(TimeZone="EST"), ["TimeZone"]),
    "end before begin": (session_body(DateBegin="2026-03-02T16:00:00", DateEnd="2026-03-02T15:00:00"),
                         ["DateEnd", "must be after DateBegin"]),
    "end equals begin": (session_body(DateBegin="2026-03-02T16:00:00", DateEnd="2026-03-02T16:00:00"),
                         ["must be after"]),
    "unparseable offset": (session_body(TimeZone={"UTCOffset": "Eastern"}), ["UTCOffset", "-05:00"]),
    "offset out of range": (session_body(TimeZone={"UTCOffset": "+15:00"}), ["UTCOffset", "-12:00"]),
    "unparseable date": (session_body(DateBegin="next tuesday"), ["DateBegin", "YYYY-MM-DDTHH:MM:SS"]),
    "bad creator email": (session_body(CreatorEmail="not-an-email"), ["CreatorEmail"]),
    "bad instructor email": (session_body(InstructorEmails="a@example.com; nope"), ["InstructorEmails", "nope"]),
    "empty title": (session_body(Title="   "), ["Title is empty"]),
    "NUL in title": (session_body(Title="a\x00b"), ["Title contains control characters"]),
    "NUL in description": (session_body(Description="a\x00b"), ["Description contains control characters"]),
    "NUL in LoId": (session_body(LoId="lo\x00"), ["LoId contains control characters"]),
    "body is a list": ([session_body()], ["JSON object"]),
    "extended options while off": (session_body(ExtendedOptions=[{"Id": "x", "IsChecked": True}]),
                                   ["extended options are turned off"]),
}


@pytest.mark.parametrize("case", sorted(BAD_SESSION_BODIES))
def test_bad_session_bodies(seeded: Lms, db: Db, case: str) -> None:
    body, words = BAD_SESSION_BODIES[case]
    before = db.snapshot()
    assert_refused(seeded.create_session(body), 400, *words)
    assert_refused(seeded.update_session("known", body if isinstance(body, list) else {**body, "SessionId": "known"}),
                   400)
    assert db.snapshot() == before


def test_malformed_json(seeded: Lms, db: Db) -> None:
    before = db.snapshot()
    response = seeded.call("POST", "/session", content=b'{"Title": "x",', headers={"content-type": "application/json"})
    assert_refused(response, 400, "not valid JSON")
    assert db.snapshot() == before


def test_a_ten_megabyte_body_is_refused_before_it_is_read(seeded: Lms, db: Db) -> None:
    before = db.snapshot()
    huge = session_body(Description="x" * 10_000_000)
    assert_refused(seeded.create_session(huge), 413, "larger than")
    assert db.snapshot() == before


@pytest.mark.parametrize("encoded, words", [
    ("not base64!", ["not base64"]),
    (base64.b64encode(b"not-an-email").decode(), ["not a valid email"]),
    (base64.b64encode(b"\xff\xfe\xfd").decode(), ["does not decode"]),
    ("a", ["truncated"]),
])
def test_bad_launch_emails(seeded: Lms, db: Db, encoded: str, words: list[str]) -> None:
    before = db.snapshot()
    assert_refused(seeded.call("GET", f"/session/known/user/{encoded}/url"), 400, *words)
    assert db.snapshot() == before


def test_unknown_session(seeded: Lms, db: Db) -> None:
    before = db.snapshot()
    assert_refused(seeded.launch("nope", "learner@example.com"), 404, "not known", "Save the session")
    assert_refused(seeded.attendees("nope"), 404, "not known")
    assert db.snapshot() == before


def test_launch_of_a_cancelled_session(seeded: Lms, db: Db) -> None:
    seeded.cancel_session("known")
    before = db.snapshot()
    assert_refused(seeded.launch("known", "learner@example.com"), 400, "cancelled")
    assert db.snapshot() == before


@pytest.mark.parametrize("body, words", [
    ({"Email": "x@example.com", "FirstName": "A"}, ["LastName is required"]),
    ({"Email": "nope", "FirstName": "A", "LastName": "B"}, ["Email", "not a valid email"]),
    ({"Email": "x@example.com", "FirstName": " ", "LastName": "B"}, ["FirstName is empty"]),
])
def test_bad_instructor_bodies(seeded: Lms, db: Db, body: dict[str, Any], words: list[str]) -> None:
    before = db.snapshot()
    assert_refused(seeded.call("POST", "/instructor", json=body), 400, *words)
    assert db.snapshot() == before


def test_renaming_an_instructor_onto_another_instructors_email_is_refused(seeded: Lms, db: Db) -> None:
    seeded.add_instructor("other@example.com")
    before = db.snapshot()
    response = seeded.call("PUT", "/instructor", json={"OldEmail": "ins@example.com", "NewEmail": "other@example.com",
                                                       "FirstName": "A", "LastName": "B"})
    assert_refused(response, 400, "already belongs to another instructor")
    assert db.snapshot() == before


def test_unknown_path_and_method(seeded: Lms) -> None:
    assert_refused(seeded.call("GET", "/nothing/here"), 404, "no endpoint")
    response = seeded.call("PATCH", "/session/known", json={})
    assert response.status_code == 405
    assert response.json()["error"]["code"] == 405


def test_nothing_answers_500_with_a_stack_trace_for_odd_session_ids(seeded: Lms) -> None:
    for session_id in ["%00", "a" * 300, "ü-ñ", "..%2F..%2Fetc"]:
        response = seeded.call("GET", f"/session/{session_id}/user/{b64('x@example.com')}/url")
        assert response.status_code in (400, 404), (session_id, response.text)
