"""Launch links, the launch ledger, roles, the launch window, and attendance from launch evidence."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from urllib.parse import unquote

import pytest

from tests.conftest import NOW, Db, Lms, b64, session_body

START = NOW + timedelta(hours=1)


def follow(lms: Lms, join_url: str):
    return lms.client.get(join_url.replace("http://testserver", ""), headers={"User-Agent": "pytest-browser"})


@pytest.fixture
def scheduled(lms: Lms) -> Lms:
    assert lms.add_instructor("teacher@example.com", "Tess", "Teacher").status_code == 200
    assert lms.create_session(session_body(start=START)).status_code == 200
    return lms


@pytest.mark.parametrize("encode", [
    lambda e: b64(e),
    lambda e: b64(e).rstrip("="),
    lambda e: b64(e).replace("+", "-").replace("/", "_"),
    lambda e: b64(e).replace("=", "%3D"),
])
def test_launch_decodes_every_base64_flavour_and_compares_case_insensitively(scheduled: Lms, encode) -> None:
    response = scheduled.call("GET", f"/session/sess-1/user/{encode('  Learner@Example.COM ')}/url")
    assert response.status_code == 200, response.text
    assert response.json()["data"]["joinUrl"].startswith("http://testserver/l/")


def test_links_open_in_the_launch_window_and_are_recorded(scheduled: Lms, db: Db, clock) -> None:
    url = scheduled.launch("sess-1", "learner@example.com").json()["data"]["joinUrl"]
    too_early = follow(scheduled, url)
    assert too_early.status_code == 403
    assert "opens for joining at" in too_early.text
    clock.set(START - timedelta(minutes=10))
    url = scheduled.launch("sess-1", "learner@example.com").json()["data"]["joinUrl"]  # the LMS asks on each click
    ok = follow(scheduled, url)
    assert ok.status_code == 302
    assert ok.headers["referrer-policy"] == "no-referrer"
    assert "learner%40example.com" in ok.headers["location"]
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT email, role, user_agent FROM launches").all()
    assert rows == [("learner@example.com", "attendee", "pytest-browser")]


def test_instructors_get_the_host_role(scheduled: Lms, db: Db, clock) -> None:
    clock.set(START)
    url = scheduled.launch("sess-1", "Teacher@example.com").json()["data"]["joinUrl"]
    assert follow(scheduled, url).status_code == 302
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT role FROM launches").scalar_one() == "host"


def test_instructor_emails_decide_host_and_cohost(lms: Lms, db: Db, clock) -> None:
    lms.create_session(session_body(start=START, InstructorEmails="lead@example.com;helper@example.com"))
    clock.set(START)
    for email in ("lead@example.com", "helper@example.com", "learner@example.com"):
        assert follow(lms, lms.launch("sess-1", email).json()["data"]["joinUrl"]).status_code == 302
    with db.engine.connect() as conn:
        roles = dict(conn.exec_driver_sql("SELECT email, role FROM launches").all())
    assert roles == {"lead@example.com": "host", "helper@example.com": "cohost", "learner@example.com": "attendee"}


def heading(page: str) -> str:
    found = re.search(r"<h1>(.*?)</h1>", page, re.S)
    assert found, page
    return html.unescape(found.group(1))


def test_a_link_clicked_too_early_or_after_the_class_says_which(scheduled: Lms, clock) -> None:
    """Issue 13: the page for a class that had ended was headed "You can't join yet"."""
    too_early = follow(scheduled, scheduled.launch("sess-1", "learner@example.com").json()["data"]["joinUrl"])
    assert too_early.status_code == 403 and heading(too_early.text) == "You can't join yet"
    clock.set(START + timedelta(minutes=60) + timedelta(hours=1, minutes=1))  # past the end and the hour's grace
    ended = follow(scheduled, scheduled.launch("sess-1", "learner@example.com").json()["data"]["joinUrl"])
    assert ended.status_code == 403 and "ended at" in ended.text
    assert heading(ended.text) == "This class has ended"


def test_every_other_refused_click_is_headed_with_its_reason(scheduled: Lms, db: Db, connection, clock) -> None:
    from viltbridge.app import connections

    clock.set(START)
    url = scheduled.launch("sess-1", "learner@example.com").json()["data"]["joinUrl"]
    body, signature = url.rsplit(".", 1)
    assert heading(follow(scheduled, f"{body}.{'A' * len(signature)}").text) == "This link can't be used"
    assert heading(follow(scheduled, "/l/no-dot-at-all").text) == "This link can't be used"
    with db.session() as s, s.begin():
        connections.set_active(s, connection["name"], False)
    assert heading(follow(scheduled, url).text) == "Joining online is switched off"
    with db.session() as s, s.begin():
        connections.set_active(s, connection["name"], True)
    scheduled.cancel_session("sess-1")
    assert heading(follow(scheduled, url).text) == "This class was cancelled"
    clock.set(START + timedelta(minutes=16))
    assert heading(follow(scheduled, url).text) == "This link has expired"


def test_a_link_expires_minutes_after_the_lms_asked_for_it(scheduled: Lms, clock) -> None:
    clock.set(START)
    url = scheduled.launch("sess-1", "learner@example.com").json()["data"]["joinUrl"]
    clock.set(START + timedelta(minutes=16))
    expired = follow(scheduled, url)
    assert expired.status_code == 403 and "expired" in expired.text


def test_a_tampered_link_is_refused_with_a_page(scheduled: Lms) -> None:
    url = scheduled.launch("sess-1", "learner@example.com").json()["data"]["joinUrl"]
    body, signature = url.rsplit(".", 1)
    forged = follow(scheduled, f"{body}.{'A' * len(signature)}")
    assert forged.status_code == 403
    assert "text/html" in forged.headers["content-type"]
    assert "not valid" in forged.text


def test_a_link_stops_working_when_the_session_is_cancelled(scheduled: Lms, clock) -> None:
    clock.set(START)
    url = scheduled.launch("sess-1", "learner@example.com").json()["data"]["joinUrl"]
    scheduled.cancel_session("sess-1")
    response = follow(scheduled, url)
    assert response.status_code == 400 and "cancelled" in response.text


def test_a_link_stops_working_when_the_connection_is_deactivated(scheduled: Lms, db: Db, connection, clock) -> None:
    from viltbridge.app import connections

    clock.set(START)
    url = scheduled.launch("sess-1", "learner@example.com").json()["data"]["joinUrl"]
    with db.session() as s, s.begin():
        connections.set_active(s, connection["name"], False)
    response = follow(scheduled, url)
    assert response.status_code == 403 and "switched off" in response.text


def test_attendance_before_anyone_joined_says_when_to_retry(scheduled: Lms) -> None:
    response = scheduled.attendees("sess-1")
    assert response.status_code == 404  # not a failure: nothing to report yet
    assert response.json()["status"] == "ValidationError"
    assert "after it ends" in response.json()["error"]["message"]
    assert int(response.headers["retry-after"]) > 0


def test_attendance_lists_learners_who_launched_while_open(scheduled: Lms, db: Db, clock) -> None:
    def launch(email: str):
        return follow(scheduled, scheduled.launch("sess-1", email).json()["data"]["joinUrl"])

    clock.set(START + timedelta(minutes=5))
    for email in ("a@example.com", "b@example.com", "teacher@example.com"):
        assert launch(email).status_code == 302
    assert launch("a@example.com").status_code == 302  # a reconnect counts once
    during = scheduled.attendees("sess-1")
    assert during.status_code == 200
    assert [a["email"] for a in during.json()["data"]["attendees"]] == ["a@example.com", "b@example.com"]
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT attendance_state FROM sessions").scalar_one() == "provisional"
    clock.set(START + timedelta(minutes=61))  # after the end, inside the grace period: a click no longer counts
    assert launch("late@example.com").status_code == 302
    after = scheduled.attendees("sess-1")
    assert [a["email"] for a in after.json()["data"]["attendees"]] == ["a@example.com", "b@example.com"]
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT attendance_state FROM sessions").scalar_one() == "final"


def test_attendance_after_an_empty_session_is_an_empty_final_list(scheduled: Lms, clock) -> None:
    clock.set(START + timedelta(hours=3))
    response = scheduled.attendees("sess-1")
    assert response.status_code == 200
    assert response.json()["data"]["attendees"] == []


def test_the_person_in_the_link_and_in_attendance_is_the_lms_email_as_spelled(scheduled: Lms, clock) -> None:
    clock.set(START)
    url = scheduled.launch("sess-1", " Mixed.Case@Example.com ").json()["data"]["joinUrl"]
    location = unquote(follow(scheduled, url).headers["location"])
    assert 'userInfo.displayName="Mixed.Case@Example.com"' in location
    again = scheduled.launch("sess-1", "mixed.case@example.COM").json()["data"]["joinUrl"]
    follow(scheduled, again)
    attendees = scheduled.attendees("sess-1").json()["data"]["attendees"]
    assert attendees == [{"email": "mixed.case@example.COM"}]  # one person, in the latest spelling
