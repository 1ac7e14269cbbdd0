"""Microsoft Graph failing under a Teams connection, seen from the LMS: an outage or a slow Graph at save time
loses nothing and the meeting is made once when Graph is back; a cancel during an outage reaches Graph later;
throttling and server errors while the LMS asks for attendance get a clear answer and store nothing; an expired
token is never the LMS's problem; and a refusal after the outage (the access policy revoked) ends the job dead
with the reason on the session."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from tests.conftest import NOW, Db, Lms, session_body
from tests.processes import wait_for
from viltbridge.jobs.runner import JobRunner
from viltbridge.providers.http import account_breaker
from viltbridge.providers.teams.simulator import TeamsSimulator

START = NOW + timedelta(days=1)
TESS = "tess@example.com"
OUTAGE = {"count": 100_000, "path": "/onlineMeetings"}  # every onlineMeetings call, for as long as the test needs


@pytest.fixture
def teams_lms(client: TestClient, db: Db, sim: TeamsSimulator) -> Lms:
    created = db.create_connection("acme-teams", "teams", **sim.settings(access_policy_name="vb-meetings"))
    lms = Lms(client, created["username"], created["password"])
    assert lms.add_instructor(TESS, "Tess", "Teacher").status_code == 200
    return lms


def session_row(db: Db) -> dict[str, Any]:
    with db.engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT meeting_id, meeting_pending, meeting_error, title, attendance_state "
                                   "FROM sessions").one()
    return dict(row._mapping)


def jobs(db: Db, kind: str = "meeting.sync") -> list[tuple[str, int]]:
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT kind, state, attempts FROM jobs ORDER BY id")
        return [(state, attempts) for job_kind, state, attempts in rows if job_kind == kind]


def attendance_kept(db: Db) -> dict[str, int]:
    with db.engine.connect() as conn:
        return {table: conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
                for table in ("attendance_segments", "attendance_results", "attendance_reviews")}


def run_due(lms: Lms) -> dict[str, int]:
    runner = JobRunner(lms.client.app.state.ctx, "test-worker")
    return dict(lms.client.portal.call(runner.run_due))


def graph_recovers(sim: TeamsSimulator) -> None:
    sim.state.clear_faults()
    # The tenant's circuit breaker waits 30 s of real time before trying Graph again; a test does not wait.
    account_breaker("teams", sim.config.tenant_id).close()


def error_of(response: Any) -> str:
    return str(response.json()["error"]["message"])


# -- the simulator's faults look like Graph's ----------------------------------------------------------------


def test_injected_faults_answer_like_graph(sim: TeamsSimulator, api: httpx2.Client) -> None:
    scripted = httpx2.post(f"{sim.base_url}/_sim/inject_fault",
                           json={"status": 503, "count": 1, "path": "/users/", "retry_after": "7"})
    assert scripted.status_code == 200, scripted.text
    down = api.get(f"/users/{TESS}")
    assert down.status_code == 503 and down.headers["Retry-After"] == "7"
    error = down.json()["error"]
    assert error["code"] == "serviceNotAvailable" and error["message"]
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}
    assert "Retry-After" not in api.get(f"/users/{TESS}").headers  # the count is spent: served again
    sim.state.inject_fault(500, path="/users/")
    assert api.get(f"/users/{TESS}").json()["error"]["code"] == "generalException"
    sim.state.inject_fault(delay=0.3, path="/users/")
    started = time.monotonic()
    assert api.get(f"/users/{TESS}").status_code == 200  # slow, then served
    assert time.monotonic() - started >= 0.3


# -- (1) a ten-minute outage at save time ----------------------------------------------------------------------


def test_a_ten_minute_outage_at_save_time_loses_nothing(teams_lms: Lms, sim: TeamsSimulator, db: Db, clock) -> None:
    sim.state.inject_fault(503, **OUTAGE)
    body = session_body("o-1", start=START, InstructorEmails=TESS)
    saved = teams_lms.create_session(body)
    assert saved.status_code == 200, saved.text  # the admin's save is not lost
    assert "will be created as soon as it is back" in saved.json()["message"]
    row = session_row(db)
    assert row["meeting_pending"] == "create" and row["meeting_id"] is None
    assert "Microsoft Graph had a server error (HTTP 503" in row["meeting_error"]
    edited = teams_lms.update_session("o-1", {**body, "Title": "Renamed during the outage"})
    assert edited.status_code == 200 and "will be created" in edited.json()["message"]

    assert run_due(teams_lms) == {}  # the first retry waits its backoff
    for minute in range(1, 11):  # ten minutes of outage: every due retry fails and backs off
        clock.set(NOW + timedelta(minutes=minute))
        run_due(teams_lms)
    [(state, attempts)] = jobs(db)
    assert state == "queued" and 3 <= attempts <= 6  # attempts so far, backing off
    assert session_row(db)["meeting_id"] is None and not sim.state.meetings

    graph_recovers(sim)
    clock.set(NOW + timedelta(minutes=30))
    assert run_due(teams_lms).get("done") == 1
    row = session_row(db)
    assert row["meeting_id"] and row["meeting_pending"] is None and row["meeting_error"] is None
    [meeting] = sim.state.meetings.values()  # created once, with the latest save
    assert meeting.id == row["meeting_id"] and meeting.subject == "Renamed during the outage"
    assert meeting.organizer.upn == TESS and meeting.start == START
    assert [state for state, _ in jobs(db)] == ["done"]
    launched = teams_lms.launch("o-1", TESS)
    assert launched.status_code == 200 and launched.json()["data"]["joinUrl"]


# -- (2) a cancel during an outage -----------------------------------------------------------------------------


def test_a_cancel_during_an_outage_reaches_graph_later(teams_lms: Lms, sim: TeamsSimulator, db: Db, clock) -> None:
    assert teams_lms.create_session(session_body("o-2", start=START, InstructorEmails=TESS)).status_code == 200
    [meeting_id] = sim.state.meetings
    sim.state.inject_fault(503, **OUTAGE)
    cancelled = teams_lms.cancel_session("o-2")
    assert cancelled.status_code == 200 and "will be cancelled" in cancelled.json()["message"]
    assert meeting_id in sim.state.meetings and session_row(db)["meeting_pending"] == "cancel"
    clock.set(NOW + timedelta(minutes=1))
    assert run_due(teams_lms) == {"queued": 1}  # still down: retried later
    assert meeting_id in sim.state.meetings

    graph_recovers(sim)
    clock.set(NOW + timedelta(minutes=10))
    assert run_due(teams_lms).get("done") == 1
    assert meeting_id not in sim.state.meetings  # the DELETE reached Graph
    row = session_row(db)
    assert row["meeting_pending"] is None and row["meeting_error"] is None
    assert teams_lms.cancel_session("o-2").status_code == 200  # the LMS repeating itself changes nothing


# -- (3) throttling and server errors while the LMS asks for attendance ----------------------------------------


def held_class(sim: TeamsSimulator, db: Db, lms: Lms, clock) -> None:
    """A one-hour class at START, Tess teaching and Jane (who launched from the LMS) attending for 50 minutes."""
    sim.state.seed_user("jane@example.com", "Jane Doe")
    assert lms.create_session(session_body("a-1", start=START, InstructorEmails=TESS)).status_code == 200
    clock.set(START - timedelta(minutes=5))
    join = lms.launch("a-1", "jane@example.com").json()["data"]["joinUrl"]
    assert lms.client.get(join.replace("http://testserver", "")).status_code == 302  # Jane follows it
    meeting_id = session_row(db)["meeting_id"]
    sim.state.join(meeting_id, upn=TESS)
    sim.state.join(meeting_id, upn="jane@example.com")
    sim.state.advance(50 * 60)
    sim.state.end_meeting(meeting_id)
    clock.set(START + timedelta(minutes=61))


def test_throttling_and_server_errors_while_the_lms_asks_for_attendance(
        client: TestClient, db: Db, sim: TeamsSimulator, clock) -> None:
    sim.reset(start=START, records_page_size=1)  # one record a page: Tess on the first, Jane on the second
    sim.state.seed_user(TESS, "Tess Teacher")
    created = db.create_connection("acme-teams", "teams", **sim.settings())
    lms = Lms(client, created["username"], created["password"])
    assert lms.add_instructor(TESS, "Tess", "Teacher").status_code == 200
    held_class(sim, db, lms, clock)
    before = session_row(db)["attendance_state"]

    # A throttling storm that outlasts the call: the LMS hears at once that Graph is limiting, and when to retry.
    sim.state.inject_fault(429, count=100_000, path="/attendanceReports", retry_after="300")
    throttled = lms.attendees("a-1")
    assert throttled.status_code == 500 and throttled.headers["Retry-After"] == "300"
    assert "Microsoft Graph is limiting this account's API calls" in error_of(throttled)
    assert "Try again in 4 min" in error_of(throttled) or "Try again in 5 min" in error_of(throttled)
    graph_recovers(sim)

    # Graph fails on the second page of records, after the first was read: no half answer, nothing kept.
    sim.state.inject_fault(503, count=100_000, path="skiptoken", retry_after="120")
    failed = lms.attendees("a-1")
    assert failed.status_code == 500 and failed.headers["Retry-After"] == "120"
    assert "Microsoft Graph had a server error (HTTP 503" in error_of(failed)
    assert "attendance records" in error_of(failed)
    assert attendance_kept(db) == {"attendance_segments": 0, "attendance_results": 0, "attendance_reviews": 0}
    assert session_row(db)["attendance_state"] == before
    graph_recovers(sim)

    # A short storm is ridden out inside the call, and the answer is the right one.
    sim.state.inject_fault(429, count=3, path="/attendanceReports", retry_after="0.2")
    attended = lms.attendees("a-1")
    assert attended.status_code == 200, attended.text
    assert attended.json()["data"]["attendees"] == [{"email": "jane@example.com"}]
    assert sim.state.faults[0].remaining == 0  # the storm did happen
    assert attendance_kept(db)["attendance_segments"] == 2  # Tess's and Jane's intervals, each once


# -- (4) token expiry mid-run ----------------------------------------------------------------------------------


def test_a_token_expiring_mid_run_is_invisible_to_the_lms(client: TestClient, db: Db, sim: TeamsSimulator,
                                                          clock) -> None:
    sim.reset(start=START)
    sim.state.seed_user(TESS, "Tess Teacher")
    created = db.create_connection("acme-teams", "teams", **sim.settings())
    lms = Lms(client, created["username"], created["password"])
    assert lms.add_instructor(TESS, "Tess", "Teacher").status_code == 200
    held_class(sim, db, lms, clock)  # the class runs 50 minutes on Graph's clock ...
    sim.state.advance(15 * 60)  # ... and by the time the LMS asks, the token viltbridge holds has expired at Graph
    assert sim.state.tokens_issued == 1
    attended = lms.attendees("a-1")
    assert attended.status_code == 200, attended.text
    assert attended.json()["data"]["attendees"] == [{"email": "jane@example.com"}]
    assert sim.state.tokens_issued == 2  # a 401, one new token, the same call answered

    sim.state.expire_tokens()  # revoked early this time (Graph's clock says the token is still good)
    moved = lms.update_session("a-1", session_body("a-1", start=START + timedelta(days=7), InstructorEmails=TESS))
    assert moved.status_code == 200 and "message" not in moved.json()
    [meeting] = sim.state.meetings.values()
    assert meeting.start == START + timedelta(days=7)
    assert session_row(db)["meeting_pending"] is None
    assert sim.state.tokens_issued == 3 and not jobs(db)


# -- (5) a slow Graph at save time -----------------------------------------------------------------------------


def test_a_slow_graph_at_save_time_is_handled_like_an_outage(teams_lms: Lms, sim: TeamsSimulator, db: Db,
                                                             clock) -> None:
    # Longer than one attempt may wait (5 s): both attempts of the save time out, though Graph does the work.
    sim.state.inject_fault(delay=6.0, count=2, method="POST", path="/onlineMeetings/createOrGet")
    started = time.monotonic()
    saved = teams_lms.create_session(session_body("o-5", start=START, InstructorEmails=TESS))
    # The admin is answered within the interactive budget (8 s), not after both slow answers (12 s).
    assert time.monotonic() - started < 12
    assert saved.status_code == 200, saved.text
    assert "will be created as soon as it is back" in saved.json()["message"]
    row = session_row(db)
    assert row["meeting_pending"] == "create" and row["meeting_id"] is None
    assert "Microsoft Graph did not answer in time" in row["meeting_error"]
    wait_for(lambda: bool(sim.state.meetings), seconds=60, what="the slow answers to arrive after all")
    assert len(sim.state.meetings) == 1  # Graph made the meeting; viltbridge never heard

    clock.set(NOW + timedelta(minutes=5))
    assert run_due(teams_lms).get("done") == 1
    [meeting] = sim.state.meetings.values()  # the job found that meeting (createOrGet), no second one
    row = session_row(db)
    assert row["meeting_id"] == meeting.id and row["meeting_pending"] is None and row["meeting_error"] is None


# -- (6) the access policy revoked during the outage -----------------------------------------------------------


def test_the_access_policy_revoked_after_an_outage_ends_dead_with_the_reason_on_the_session(
        teams_lms: Lms, sim: TeamsSimulator, db: Db, clock) -> None:
    sim.state.inject_fault(503, **OUTAGE)
    assert teams_lms.create_session(session_body("o-6", start=START, InstructorEmails=TESS)).status_code == 200
    sim.state.set_policy(TESS, granted=False)  # meanwhile a Teams admin took the app's access policy away from her
    graph_recovers(sim)
    clock.set(NOW + timedelta(minutes=5))
    assert run_due(teams_lms) == {"dead": 1}
    row = session_row(db)
    user_id = sim.state.user(TESS).id
    assert row["meeting_pending"] == "create" and row["meeting_id"] is None
    assert "has no Teams application access policy for user" in row["meeting_error"]
    assert f"Grant-CsApplicationAccessPolicy -PolicyName vb-meetings -Identity {user_id}" in row["meeting_error"]
    assert jobs(db) == [("dead", 1)]
    assert not sim.state.meetings

    clock.set(NOW + timedelta(hours=2))
    assert run_due(teams_lms) == {}  # dead stays dead: nothing hammers Graph with a request it refuses
