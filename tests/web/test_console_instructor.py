"""An instructor's console: only their own sessions, in their zone, conflicts flagged (across connections),
launch-as-host through the usual signed launch, a calendar feed (parsed back with icalendar: stable UIDs, growing
SEQUENCE, cancellations, VTIMEZONE), and the attendance timeline chart."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from icalendar import Calendar

from tests.conftest import NOW, Db, Lms, session_body
from tests.web.test_console_access import make_user, sign_in
from viltbridge.app import console_users
from viltbridge.core.permissions import ConsoleRole

START = NOW + timedelta(days=1)


def teach(db: Db, client: TestClient) -> tuple[Lms, Lms]:
    first = db.create_connection("acme-a", "link")
    second = db.create_connection("acme-b", "link")
    lms_a, lms_b = Lms(client, first["username"], first["password"]), Lms(client, second["username"],
                                                                         second["password"])
    for lms in (lms_a, lms_b):
        assert lms.add_instructor("tess@example.com", "Tess", "Teacher").status_code == 200
        assert lms.add_instructor("cole@example.com", "Cole", "Helper").status_code == 200
    return lms_a, lms_b


def test_an_instructor_sees_only_their_sessions_with_conflicts_and_can_launch(client: TestClient, db: Db) -> None:
    lms_a, lms_b = teach(db, client)
    assert lms_a.create_session(session_body("a-1", start=START, minutes=60,
                                             InstructorEmails="tess@example.com")).status_code == 200
    # The same instructor, booked by another connection, half an hour into the first class.
    saved = lms_b.create_session(session_body("b-1", start=START + timedelta(minutes=30), minutes=60,
                                              InstructorEmails="Tess@Example.com"))
    assert saved.status_code == 200  # saved regardless, and the LMS is told
    assert "Saved, but note: instructor tess@example.com is booked twice" in saved.json()["message"]
    assert lms_a.create_session(session_body("a-2", start=START, minutes=60,
                                             InstructorEmails="cole@example.com")).status_code == 200
    with db.session() as s, s.begin():
        console_users.create(s, NOW, "test", "tess@example.com", ["instructor"], password="x" * 16,
                             time_zone="Europe/Berlin")
    assert sign_in(client, "tess@example.com", "x" * 16).status_code == 303
    page = client.get("/console/my-sessions")
    assert page.status_code == 200
    assert 'data-session="a-1"' in page.text and 'data-session="b-1"' in page.text
    assert 'data-session="a-2"' not in page.text  # Cole's class
    assert "instructor tess@example.com is booked twice" in page.text and "overlap by 30 min" in page.text
    local = START.astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M")
    assert local in page.text  # in her zone, not UTC
    launch = client.get("/console/my-sessions/acme-a/a-1/launch")
    assert launch.status_code == 303 and "/l/" in launch.headers["location"]  # the signed launch, as from the LMS
    assert client.get("/console/my-sessions/acme-a/a-2/launch").status_code == 404  # not hers
    assert client.get("/console/sessions").status_code == 403  # the admin list is not for instructors


def test_the_calendar_feed_keeps_uids_bumps_sequence_and_cancels(client: TestClient, db: Db, clock) -> None:
    lms_a, _ = teach(db, client)
    body = session_body("a-1", start=START, minutes=60, InstructorEmails="tess@example.com")
    assert lms_a.create_session(body).status_code == 200
    make_user(db, "tess@example.com", ConsoleRole.INSTRUCTOR)
    sign_in(client, "tess@example.com")
    feed_url = re.search(r'<code id="feed-url">([^<]+)</code>', client.get("/console/my-sessions").text)
    assert feed_url
    path = feed_url.group(1).replace("http://testserver", "")
    client.cookies.clear()  # a calendar app has no session

    def events() -> list:
        answer = client.get(path)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/calendar")
        parsed = Calendar.from_ical(answer.content)
        assert parsed.walk("VTIMEZONE")  # the part's zone is described
        return parsed.walk("VEVENT")

    [first] = events()
    clock.set(NOW + timedelta(minutes=10))
    assert lms_a.update_session("a-1", {**body, "Title": "Forklift safety"}).status_code == 200
    [edited] = events()
    assert str(edited["uid"]) == str(first["uid"]) and str(edited["summary"]) == "Forklift safety"
    assert int(edited["sequence"]) > int(first["sequence"])
    clock.set(NOW + timedelta(minutes=20))
    assert lms_a.cancel_session("a-1").status_code == 200
    [cancelled] = events()
    assert str(cancelled["status"]) == "CANCELLED" and int(cancelled["sequence"]) > int(edited["sequence"])
    assert cancelled.decoded("dtstart") == START
    assert client.get(path.replace(".ics", "0.ics")).status_code == 404  # a wrong token


def test_the_attendance_chart_shows_each_learner(client: TestClient, db: Db, lms: Lms, clock) -> None:
    assert lms.add_instructor("tess@example.com", "Tess", "Teacher").status_code == 200
    assert lms.create_session(session_body("sess-1", start=NOW + timedelta(minutes=5), minutes=60,
                                           InstructorEmails="tess@example.com")).status_code == 200
    clock.set(NOW + timedelta(minutes=1))
    for email in ("jane@example.com", "bob@example.com"):
        link = lms.launch("sess-1", email).json()["data"]["joinUrl"]
        assert client.get(link.replace("http://testserver", "")).status_code == 302
    clock.set(NOW + timedelta(hours=3))
    assert lms.attendees("sess-1").status_code == 200  # launch-only provider: decided from the launches
    make_user(db, "ada@example.com", ConsoleRole.ROSTER_MANAGE)
    sign_in(client, "ada@example.com")
    page = client.get("/console/sessions/acme/sess-1")
    assert page.status_code == 200
    assert '<svg' in page.text and 'class="threshold"' in page.text
    assert 'data-email="jane@example.com"' in page.text and 'data-email="bob@example.com"' in page.text
    timeline = page.text[page.text.index('id="timeline"'):]
    assert "lms.session.create (correlationId corr-123)" in timeline and "lms:acme" in timeline
    assert "lms.attendance (correlationId corr-123)" in timeline  # the roster answer, too


def test_the_week_calendar_puts_classes_on_the_instructors_own_days(client: TestClient, db: Db) -> None:
    lms_a, lms_b = teach(db, client)
    late = NOW.replace(hour=23, minute=30) + timedelta(days=1)  # Tuesday 23:30 UTC = Wednesday 00:30 in Berlin
    assert lms_a.create_session(session_body("a-late", start=late, minutes=45,
                                             InstructorEmails="tess@example.com")).status_code == 200
    assert lms_b.create_session(session_body("b-late", start=late + timedelta(minutes=15), minutes=30,
                                             InstructorEmails="tess@example.com")).status_code == 200
    assert lms_a.create_session(session_body("a-next", start=NOW + timedelta(days=8),
                                             InstructorEmails="tess@example.com")).status_code == 200
    with db.session() as s, s.begin():
        console_users.create(s, NOW, "test", "tess@example.com", ["instructor"], password="x" * 16,
                             time_zone="Europe/Berlin")
    sign_in(client, "tess@example.com", "x" * 16)
    week = client.get("/console/my-calendar")  # the week of 2026-03-02 (a Monday), on the server's clock
    assert week.status_code == 200 and "2026-W10" in week.text
    wednesday = week.text[week.text.index('data-day="2026-03-04"'):week.text.index('data-day="2026-03-05"')]
    assert 'data-session="a-late"' in wednesday and "00:30" in wednesday and "conflict" in wednesday
    assert 'data-session="a-next"' not in week.text
    following = client.get("/console/my-calendar?week=2026-W11")
    assert 'data-session="a-next"' in following.text
    assert client.get("/console/my-calendar?week=2026-W60").status_code == 400
