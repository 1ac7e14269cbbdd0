"""The Cornerstone workflow with a `bbb` connection pointed at the simulator, through the contract over real HTTP:
instructor, session, edit, signed launches for the host and each learner, attendance from the analytics callback
BBB posts to `POST /webhooks/<connection>` when the meeting ends (matched by each join's userID), cancel."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from tests.conftest import NOW, Db, b64, session_body
from viltbridge.providers.bbb.simulator import BbbSimulator

START = NOW + timedelta(minutes=5)


@pytest.fixture
def lms(live_server: str, db: Db, bbb_simulator: BbbSimulator) -> Iterator[httpx2.Client]:
    bbb_simulator.reset(start=START - timedelta(days=2))  # the LMS schedules the class two days ahead
    created = db.create_connection("acme-bbb", "bbb", **bbb_simulator.settings(
        analytics_callback_url=f"{live_server}/webhooks/acme-bbb"))
    with httpx2.Client(base_url=live_server, auth=(created["username"], created["password"]), timeout=20) as client:
        yield client


def launch(lms: httpx2.Client, live_server: str, email: str) -> dict[str, str]:
    """Follow the LMS's launch URL through viltbridge's redirect to BBB's signed join; the join's parameters."""
    join_url = lms.get(f"/session/b-1/user/{b64(email)}/url").json()["data"]["joinUrl"]
    redirected = httpx2.get(join_url.replace("http://testserver", live_server))
    assert redirected.status_code in (302, 303, 307), redirected.text
    signed = redirected.headers["location"]
    assert httpx2.get(signed).status_code == 302  # BBB accepts the checksum and sends them to its client
    return {key: values[0] for key, values in parse_qs(urlsplit(signed).query).items()}


def test_the_whole_workflow_on_bigbluebutton(lms: httpx2.Client, live_server: str, bbb_simulator: BbbSimulator,
                                            db: Db) -> None:
    assert lms.post("/instructor", json={"Email": "tess@example.com", "FirstName": "Tess",
                                         "LastName": "Teacher"}).status_code == 200
    body = session_body("b-1", start=START, minutes=60, InstructorEmails="tess@example.com")
    assert lms.post("/session", json=body).status_code == 200
    assert lms.put("/session/b-1", json={**body, "Title": "Forklift safety"}).status_code == 200
    with db.engine.connect() as conn:
        meeting_id = conn.exec_driver_sql("SELECT meeting_id FROM sessions").scalar_one()

    state = bbb_simulator.state
    state.advance(2 * 24 * 3600)  # class time: BBB has long forgotten the meeting nobody joined
    assert meeting_id not in state.meeting_ids()
    joins = {email: launch(lms, live_server, email) for email in ("tess@example.com", "Jane@Example.com",
                                                                  "bob@example.com")}
    assert joins["tess@example.com"]["role"] == "MODERATOR" and joins["Jane@Example.com"]["role"] == "VIEWER"
    assert len({join["userID"] for join in joins.values()}) == 3  # one identity per person
    assert all("example.com" not in join["userID"] for join in joins.values())  # never the email itself
    assert state.meetings[meeting_id].name == "Forklift safety"  # created at the first launch with the edit
    # The instructor appears under the name the LMS sent in POST /instructor; learners under their email (the launch
    # carries no name).
    in_meeting = {a.full_name: a.role for a in state.meetings[meeting_id].attendees.values()}
    assert in_meeting == {"Tess Teacher": "MODERATOR", "Jane@Example.com": "VIEWER", "bob@example.com": "VIEWER"}

    state.advance(10 * 60)
    state.leave(meeting_id, joins["bob@example.com"]["userID"])  # ten minutes: not enough
    state.advance(50 * 60)
    assert state.end_meeting(meeting_id)["callback_status"] == 200  # delivered to our webhook route, verified

    attended = lms.get("/session/b-1/attendees")
    assert attended.status_code == 200, attended.text
    assert attended.json()["data"]["attendees"] == [{"email": "Jane@Example.com"}]  # the LMS's own spelling
    with db.engine.connect() as conn:
        rules = conn.exec_driver_sql("SELECT explanation FROM attendance_results ORDER BY email").scalars().all()
    assert rules and all("matched by personal_id" in rule for rule in rules), rules

    assert lms.delete("/session/b-1").status_code == 200
    assert lms.delete("/session/b-1").status_code == 200
