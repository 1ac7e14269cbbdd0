"""The Cornerstone workflow with a `teams` connection pointed at the Graph simulator, through the contract over
HTTP: instructor, session, edit, launches, attendance from Graph's reports, cancel."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from tests.conftest import NOW, Db, Lms, b64, session_body
from viltbridge.providers.teams.simulator import TeamsSimulator

START = NOW + timedelta(minutes=5)


def test_the_whole_workflow_on_teams(client: TestClient, db: Db, sim: TeamsSimulator, clock) -> None:
    sim.reset(start=START)  # the class happens on the simulator's clock too
    for upn, name in (("tess@example.com", "Tess Teacher"), ("jane@example.com", "Jane Doe")):
        sim.state.seed_user(upn, name)  # Jane: a learner in the same tenant, so Graph reports her email
    created = db.create_connection("acme-teams", "teams", **sim.settings())
    lms = Lms(client, created["username"], created["password"])
    assert lms.add_instructor("tess@example.com", "Tess", "Teacher").status_code == 200
    unknown = lms.add_instructor("nobody@example.com")
    assert unknown.status_code == 400, unknown.text
    body = session_body("t-1", start=START, minutes=60, InstructorEmails="tess@example.com")
    assert lms.create_session(body).status_code == 200
    assert lms.update_session("t-1", {**body, "Title": "Forklift safety"}).status_code == 200
    with db.engine.connect() as conn:
        meeting_id = conn.exec_driver_sql("SELECT meeting_id FROM sessions").scalar_one()

    clock.set(START - timedelta(minutes=5))
    for person in ("tess@example.com", "Jane@Example.com", "bob@example.com"):
        join = lms.call("GET", f"/session/t-1/user/{b64(person)}/url").json()["data"]["joinUrl"]
        followed = client.get(join.replace("http://testserver", ""), follow_redirects=False)
        assert followed.status_code == 302 and "/l/meetup-join/" in followed.headers["location"]

    state = sim.state
    state.start_meeting(meeting_id)
    state.join(meeting_id, upn="tess@example.com")
    state.join(meeting_id, upn="jane@example.com")
    state.join(meeting_id, "Bob (Guest)")  # the shared link, no email: nothing ties him to bob@example.com
    state.advance(50 * 60)
    state.end_meeting(meeting_id)
    clock.set(START + timedelta(minutes=61))
    attended = lms.attendees("t-1")
    assert attended.status_code == 200, attended.text
    assert attended.json()["data"]["attendees"] == [{"email": "Jane@Example.com"}]  # the LMS's own spelling
    with db.engine.connect() as conn:
        reviews = list(conn.exec_driver_sql("SELECT display_name FROM attendance_reviews").scalars())
    assert reviews == ["Bob (Guest)"]

    assert lms.cancel_session("t-1").status_code == 200
    assert lms.cancel_session("t-1").status_code == 200
