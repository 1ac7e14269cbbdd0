"""A learner who joined from a personal account is a row to review; the admin says who it is in the console, and
attendance is computed again with it (the connection's alias table, audited), all over real HTTP."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx2
import pytest

from tests.conftest import NOW, Db, session_body
from tests.processes import wait_for
from tests.providers.jitsi.test_contract_with_jitsi import START, World, meeting_id
from tests.providers.jitsi.test_contract_with_jitsi import jaas as jaas
from viltbridge.app import console_users
from viltbridge.config import Settings
from viltbridge.core.clock import FixedClock
from viltbridge.web.app import create_app


@pytest.fixture
def app(settings: Settings, clock: FixedClock) -> Any:
    """As `viltbridge serve` runs by default: the job workers inside the server."""
    return create_app(settings, clock=clock, public_url="http://testserver", run_worker=True)


def results(db: Db) -> dict[str, bool]:
    with db.engine.connect() as conn:
        return {str(e): bool(a) for e, a in conn.exec_driver_sql("SELECT email, attended FROM attendance_results")}


def test_an_admin_resolves_a_row_to_review_and_attendance_follows(jaas: World, db: Db) -> None:
    lms, state = jaas.lms, jaas.sim.state
    lms.post("/instructor", json={"Email": "tess@example.com", "FirstName": "Tess", "LastName": "Teacher"})
    assert lms.post("/session", json=session_body("w-1", start=START, minutes=60,
                                                  InstructorEmails="tess@example.com")).status_code == 200
    room = meeting_id(db)
    jaas.at(START - timedelta(minutes=5))
    jaas.launch("Jane@Example.com")  # she clicks Launch, then joins from her phone's own account instead
    state.join(room, "Jane D.", email="jane.personal@gmail.com")
    jaas.at(START + timedelta(minutes=60))
    state.destroy_room(room)
    jaas.at(START + timedelta(minutes=80))
    assert lms.get("/session/w-1/attendees").json()["data"]["attendees"] == []  # nothing ties the phone to her
    assert results(db) == {}  # and no decision: no segment is hers

    with db.session() as s, s.begin():
        console_users.create(s, NOW, "test", "ada@example.com", ["roster-manage"], password="a long passphrase")
    with httpx2.Client(base_url=jaas.live_server, timeout=20) as browser:
        form = browser.get("/console/login").text
        token = re.search(r'name="login_csrf" value="([^"]+)"', form)
        assert token
        assert browser.post("/console/login", data={"email": "ada@example.com", "password": "a long passphrase",
                                                    "login_csrf": token.group(1)}).status_code == 303
        page = browser.get("/console/sessions/acme-jitsi/w-1").text
        assert "jane.personal@gmail.com" in page and "This is them" in page
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert csrf
        refused = browser.post("/console/sessions/acme-jitsi/w-1/reviews/resolve",
                               data={"csrf_token": csrf.group(1), "provider_email": "jane.personal@gmail.com",
                                     "lms_email": "stranger@example.com"})
        assert refused.status_code == 400 and "not a learner of this session" in refused.text
        assert re.search(r'id="resolve-error-1">stranger@example.com is not a learner', refused.text)  # by the field
        resolved = browser.post("/console/sessions/acme-jitsi/w-1/reviews/resolve",
                                data={"csrf_token": csrf.group(1), "provider_email": "jane.personal@gmail.com",
                                      "lms_email": "Jane@Example.com"})
        assert resolved.status_code == 303
    def jobs() -> str:
        with db.engine.connect() as conn:
            return str(conn.exec_driver_sql("SELECT kind, state, attempts, run_after, last_error FROM jobs").all())

    wait_for(lambda: results(db) == {"Jane@Example.com": True}, seconds=60,
             what="the embedded worker to compute attendance again", explain=jobs)
    assert lms.get("/session/w-1/attendees").json()["data"]["attendees"] == [{"email": "Jane@Example.com"}]
    with db.engine.connect() as conn:
        actor = conn.exec_driver_sql("SELECT actor FROM audit_log WHERE action = 'attendance.resolve'").scalar_one()
        explanation = conn.exec_driver_sql("SELECT explanation FROM attendance_results").scalar_one()
    assert actor == "ada@example.com" and "alias" in explanation
