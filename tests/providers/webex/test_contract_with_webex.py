"""The Cornerstone workflow with a `webex` connection pointed at the simulator, through the contract over HTTP:
instructor, session, edit, personal launches, attendance from meetingParticipants, cancel."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from tests.conftest import NOW, Db, Lms, b64, session_body
from viltbridge.providers.webex.simulator import WebexSimulator

START = NOW + timedelta(minutes=5)


def test_the_whole_workflow_on_webex(client: TestClient, db: Db, sim: WebexSimulator, clock) -> None:
    sim.reset(start=START)  # the class happens on the simulator's clock too
    sim.state.seed_person("tess@example.com", first_name="Tess", last_name="Teacher")
    created = db.create_connection("acme-webex", "webex", **sim.settings())
    lms = Lms(client, created["username"], created["password"])
    assert lms.add_instructor("tess@example.com", "Tess", "Teacher").status_code == 200
    assert lms.add_instructor("nobody@example.com").status_code == 400
    body = session_body("w-1", start=START, minutes=60, InstructorEmails="tess@example.com")
    assert lms.create_session(body).status_code == 200
    assert lms.update_session("w-1", {**body, "Title": "Forklift safety"}).status_code == 200
    with db.engine.connect() as conn:
        meeting_id = conn.exec_driver_sql("SELECT meeting_id FROM sessions").scalar_one()

    clock.set(START - timedelta(minutes=5))
    links = {}
    for person in ("tess@example.com", "Jane@Example.com", "bob@example.com"):
        join = lms.call("GET", f"/session/w-1/user/{b64(person)}/url").json()["data"]["joinUrl"]
        followed = client.get(join.replace("http://testserver", ""), follow_redirects=False)
        assert followed.status_code == 302
        links[person] = followed.headers["location"]
    assert len(set(links.values())) == 3  # personal links: the host's start link and one per learner

    state = sim.state
    state.join(meeting_id, "Tess Teacher", email="tess@example.com")
    state.join(meeting_id, "Jane on her phone", email="jane@example.com")  # her personal link carries her email
    state.join(meeting_id, "Bob", email="bob@example.com")
    state.advance(10 * 60)
    state.leave(meeting_id, "bob@example.com")  # ten minutes: not enough
    state.advance(45 * 60)
    state.end_meeting(meeting_id)
    state.advance(16 * 60)  # Webex lists an ended meeting's participants after a delay
    clock.set(START + timedelta(minutes=75))
    attended = lms.attendees("w-1")
    assert attended.status_code == 200, attended.text
    assert attended.json()["data"]["attendees"] == [{"email": "Jane@Example.com"}]  # the LMS's own spelling
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT attendance_state FROM sessions").scalar_one() == "final"

    assert lms.cancel_session("w-1").status_code == 200
    assert lms.cancel_session("w-1").status_code == 200
