"""Zoom webhooks delivered by the simulator to the running connector: verified on the raw body, kept once each,
and used as live attendance before Zoom's report exists."""

from __future__ import annotations

import base64
from datetime import timedelta

import httpx2
import pytest

from tests.conftest import NOW, Db, session_body
from tests.providers.conftest import zoom_settings
from viltbridge.providers.zoom.simulator import ZoomSimulator

START = NOW + timedelta(minutes=5)


@pytest.fixture
def lms(live_server: str, db: Db, zoom_simulator: ZoomSimulator) -> httpx2.Client:
    zoom_simulator.reset(start=NOW)
    zoom_simulator.state.seed_user("tess@example.com", first_name="Tess", last_name="Teacher")
    zoom_simulator.state.configure_webhooks(url=f"{live_server}/webhooks/acme-zoom")
    created = db.create_connection("acme-zoom", "zoom", **zoom_settings(zoom_simulator))
    with httpx2.Client(base_url=live_server, auth=(created["username"], created["password"]), timeout=20) as client:
        yield client


def events_stored(db: Db) -> list[str]:
    with db.engine.connect() as conn:
        return list(conn.exec_driver_sql("SELECT event FROM provider_events ORDER BY id").scalars())


def test_the_challenge_is_answered_and_forged_deliveries_refused(lms: httpx2.Client, live_server: str,
                                                                  zoom_simulator: ZoomSimulator, db: Db) -> None:
    assert zoom_simulator.state.validate_webhook_endpoint()["ok"]
    forged = httpx2.post(f"{live_server}/webhooks/acme-zoom", content=b'{"event":"meeting.started"}',
                         headers={"x-zm-signature": "v0=" + "0" * 64,
                                  "x-zm-request-timestamp": str(int(NOW.timestamp()))})
    assert forged.status_code == 403
    assert httpx2.post(f"{live_server}/webhooks/nobody", content=b"{}").status_code == 404
    assert events_stored(db) == []


def test_live_events_count_before_the_report_and_duplicates_are_kept_once(lms: httpx2.Client, live_server: str,
                                                                          zoom_simulator: ZoomSimulator,
                                                                          db: Db) -> None:
    assert lms.post("/instructor", json={"Email": "tess@example.com", "FirstName": "Tess",
                                         "LastName": "Teacher"}).status_code == 200
    assert lms.post("/session", json=session_body("w-1", start=START,
                                                  InstructorEmails="tess@example.com")).status_code == 200
    email = base64.b64encode(b"jane@example.com").decode()
    join_url = lms.get(f"/session/w-1/user/{email}/url").json()["data"]["joinUrl"]
    assert httpx2.get(join_url.replace("http://testserver", live_server)).status_code == 302
    with db.engine.connect() as conn:
        meeting_id = conn.exec_driver_sql("SELECT meeting_id FROM sessions").scalar_one()

    state = zoom_simulator.state
    state.start_meeting(meeting_id)
    state.join(meeting_id, "J on a phone", registrant="jane@example.com")  # a guest name, her registrant link
    state.drain_webhooks()
    first = events_stored(db)
    assert "meeting.participant_joined" in first
    for delivery in state.webhooks_sent():
        state.redeliver_webhook(delivery["seq"])  # Zoom retries: every event arrives twice
    state.drain_webhooks()
    assert events_stored(db) == first  # nothing stored twice

    attendees = lms.get("/session/w-1/attendees")  # Zoom has no report yet: the live events decide
    assert attendees.status_code == 200
    assert attendees.json()["data"]["attendees"] == [{"email": "jane@example.com"}]
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT attendance_state FROM sessions").scalar_one() == "provisional"
