"""Zoom webhooks delivered by the simulator to the running connector: verified on the raw body, kept once each,
and used as live attendance before Zoom's report exists."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta

import httpx2
import pytest

from tests.conftest import NOW, Db, session_body
from tests.providers.conftest import zoom_settings
from viltbridge.core.clock import FixedClock
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
    unknown = httpx2.post(f"{live_server}/webhooks/nobody", content=b"{}")
    assert (unknown.status_code, unknown.json()) == (forged.status_code, forged.json())  # nothing told apart
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


@pytest.mark.parametrize("order", ["reversed", "shuffled"])
def test_out_of_order_and_repeated_deliveries_lose_nothing_and_count_nothing_twice(
        order: str, lms: httpx2.Client, live_server: str, zoom_simulator: ZoomSimulator, db: Db,
        clock: FixedClock) -> None:
    assert lms.post("/instructor", json={"Email": "tess@example.com", "FirstName": "Tess",
                                         "LastName": "Teacher"}).status_code == 200
    assert lms.post("/session", json=session_body("w-2", start=START, minutes=60,
                                                  InstructorEmails="tess@example.com")).status_code == 200
    for learner in ("jane@example.com", "bob@example.com"):
        email = base64.b64encode(learner.encode()).decode()
        join_url = lms.get(f"/session/w-2/user/{email}/url").json()["data"]["joinUrl"]
        assert httpx2.get(join_url.replace("http://testserver", live_server)).status_code == 302
    with db.engine.connect() as conn:
        meeting_id = conn.exec_driver_sql("SELECT meeting_id FROM sessions").scalar_one()

    state = zoom_simulator.state
    state.hold_webhooks()
    state.start_meeting(meeting_id)
    state.advance_clock(5 * 60)  # the scheduled start
    state.join(meeting_id, "Jane", registrant="jane@example.com")
    state.join(meeting_id, "Bob laptop", registrant="bob@example.com")
    state.join(meeting_id, "Bob phone", registrant="bob@example.com")  # two devices at once: counted once
    state.advance_clock(25 * 60)
    state.reconnect(meeting_id, "Jane", gap_seconds=60)  # a drop: her second segment must not be lost
    state.advance_clock(15 * 60)
    state.leave(meeting_id, "Bob laptop")
    state.leave(meeting_id, "Bob phone")  # 40 of 60 minutes (67%): summed devices would make it 80%
    state.advance_clock(15 * 60)
    state.leave(meeting_id, "Jane")  # 54 of 60 minutes
    state.end_meeting(meeting_id)
    clock.set(datetime.fromisoformat(state.now().replace("Z", "+00:00")))  # deliveries are signed "now"
    sent = state.release_webhooks(order=order, duplicate=2, seed=7)
    assert {delivery["status"] for delivery in sent} == {200}
    state.drain_webhooks()
    stored = events_stored(db)
    assert len(stored) * 3 == len(sent)  # each distinct event kept once, whatever the order and repeats

    live = lms.get("/session/w-2/attendees")
    assert live.status_code == 200 and live.json()["data"]["attendees"] == [{"email": "jane@example.com"}]
    state.mark_report_processed(meeting_id)  # Zoom's report now says the same: still nobody counted twice
    reconciled = lms.get("/session/w-2/attendees")
    assert reconciled.status_code == 200 and reconciled.json()["data"]["attendees"] == [{"email": "jane@example.com"}]
