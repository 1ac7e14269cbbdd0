"""Attendance for people who join a Teams meeting without launching from the LMS (issue 14, item 9): a tenant user,
whose email Microsoft verified, is credited; a guest's email is not evidence enough."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from tests.conftest import NOW, Db, Lms, session_body
from viltbridge.providers.teams.simulator import TeamsSimulator

START = NOW + timedelta(minutes=5)


def test_a_signed_in_tenant_user_who_never_launched_is_credited_and_a_guests_email_is_not(
        client: TestClient, db: Db, sim: TeamsSimulator, clock) -> None:
    sim.reset(start=START)
    for upn, name in (("tess@example.com", "Tess Teacher"), ("lee@example.com", "Lee Colleague")):
        sim.state.seed_user(upn, name)
    created = db.create_connection("acme-teams", "teams", **sim.settings())
    lms = Lms(client, created["username"], created["password"])
    assert lms.add_instructor("tess@example.com", "Tess", "Teacher").status_code == 200
    assert lms.create_session(session_body("t-1", start=START, minutes=60,
                                           InstructorEmails="tess@example.com")).status_code == 200
    with db.engine.connect() as conn:
        meeting_id = conn.exec_driver_sql("SELECT meeting_id FROM sessions").scalar_one()

    state = sim.state
    state.start_meeting(meeting_id)
    state.join(meeting_id, upn="tess@example.com")  # the organizer, signed in: an instructor, never an attendee
    state.join(meeting_id, upn="lee@example.com")  # a forwarded invitation, signed in to the tenant: no launch
    state.join(meeting_id, "Max (Guest)", email="max@example.com")  # a guest: only their word for the email
    state.advance(50 * 60)
    state.end_meeting(meeting_id)
    clock.set(START + timedelta(minutes=61))
    attended = lms.attendees("t-1")
    assert attended.status_code == 200, attended.text
    assert attended.json()["data"]["attendees"] == [{"email": "lee@example.com"}]
    with db.engine.connect() as conn:
        explanations = dict(conn.exec_driver_sql("SELECT email, explanation FROM attendance_results").all())
        reviews = list(conn.exec_driver_sql("SELECT display_name FROM attendance_reviews").scalars())
    assert "verified_email (email verified by Microsoft Teams, no launch)" in explanations["lee@example.com"]
    assert reviews == ["Max (Guest)"]
