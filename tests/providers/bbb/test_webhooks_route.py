"""The analytics callback delivered by the simulator to the running connector's `POST /webhooks/<connection>`:
verified, stored once per run, refused when forged, and turned into attendance for the LMS email. The registry
line for "bbb" is added here for the test only (the real one belongs in providers/__init__.py)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta

import httpx2
import pytest

from tests.conftest import NOW, Db, session_body
from viltbridge.providers.bbb.simulator import BbbSimulator

START = NOW + timedelta(minutes=5)


@pytest.fixture
def lms(live_server: str, db: Db, bbb_simulator: BbbSimulator) -> Iterator[httpx2.Client]:
    bbb_simulator.reset(start=NOW)
    created = db.create_connection("acme-bbb", "bbb", **bbb_simulator.settings(
        analytics_callback_url=f"{live_server}/webhooks/acme-bbb"))
    with httpx2.Client(base_url=live_server, auth=(created["username"], created["password"]), timeout=20) as client:
        yield client


def events_stored(db: Db) -> list[str]:
    with db.engine.connect() as conn:
        return list(conn.exec_driver_sql("SELECT event FROM provider_events ORDER BY id").scalars())


def test_the_callback_is_stored_once_and_forgeries_refused(lms: httpx2.Client, live_server: str,
                                                          bbb_simulator: BbbSimulator, db: Db,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    assert lms.post("/instructor", json={"Email": "tess@example.com", "FirstName": "Tess",
                                         "LastName": "Teacher"}).status_code == 200
    assert lms.post("/session", json=session_body("w-1", start=START,
                                                  InstructorEmails="tess@example.com")).status_code == 200
    email = base64.b64encode(b"jane@example.com").decode()
    join_url = lms.get(f"/session/w-1/user/{email}/url").json()["data"]["joinUrl"]
    launched = httpx2.get(join_url.replace("http://testserver", live_server))
    assert launched.status_code in (302, 303, 307), launched.text
    assert httpx2.get(launched.headers["location"]).status_code == 302  # the signed BBB join
    with db.engine.connect() as conn:
        meeting_id = conn.exec_driver_sql("SELECT meeting_id FROM sessions").scalar_one()
    assert len(bbb_simulator.state.meetings[meeting_id].attendees) == 1

    forged = httpx2.post(f"{live_server}/webhooks/acme-bbb", content=b'{"internal_meeting_id":"x","data":{}}',
                         headers={"Authorization": "Bearer a.b.c"})
    assert forged.status_code == 403 and events_stored(db) == []
    [refusal] = [r for r in caplog.records if r.name == "viltbridge.webhooks" and "refused" in r.getMessage()]
    assert refusal.levelname == "WARNING" and "acme-bbb" in refusal.getMessage()

    bbb_simulator.state.advance(70 * 60)  # she stays the whole class
    assert bbb_simulator.state.end_meeting(meeting_id)["callback_status"] == 200
    callback = bbb_simulator.state.callbacks[0]
    again = httpx2.post(callback["url"], content=callback["body"], headers=callback["headers"])
    assert again.status_code == 200
    assert events_stored(db) == ["analytics-callback"]

    attendees = lms.get("/session/w-1/attendees")  # linked through her signed join's userID
    assert attendees.status_code == 200, attendees.text
    assert attendees.json()["data"]["attendees"] == [{"email": "jane@example.com"}]
