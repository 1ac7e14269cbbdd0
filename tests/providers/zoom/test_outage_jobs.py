"""Zoom down when the LMS saves: the LMS still gets a prompt answer, nothing is lost, and the meeting work is done
by a job once Zoom is back (a ten-minute outage, retried with backoff)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.conftest import NOW, Db, Lms, session_body
from viltbridge.jobs.runner import JobRunner
from viltbridge.providers.http import account_breaker
from viltbridge.providers.zoom.simulator import ZoomSimulator

START = NOW + timedelta(days=1)


@pytest.fixture
def zoom_lms(zoom_lms: Lms) -> Lms:
    assert zoom_lms.add_instructor("tess@example.com", "Tess", "Teacher").status_code == 200
    return zoom_lms


def session_row(db: Db) -> dict[str, object]:
    with db.engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT meeting_id, meeting_pending, meeting_error, title FROM sessions").one()
    return dict(row._mapping)


def jobs(db: Db) -> list[tuple[str, str, int]]:
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql("SELECT kind, state, attempts FROM jobs ORDER BY id")]


def zoom_recovers(sim: ZoomSimulator) -> None:
    sim.state.clear_faults()
    # The account's circuit breaker waits 30 s of real time before trying Zoom again; a test does not wait.
    account_breaker("zoom", sim.config.account_id).close()


def test_a_ten_minute_outage_at_save_time_loses_nothing(zoom_lms: Lms, zoom_simulator: ZoomSimulator, db: Db,
                                                        clock) -> None:
    zoom_simulator.state.inject_fault(503, count=100_000, path="/meetings")
    body = session_body("o-1", start=START, InstructorEmails="tess@example.com")
    saved = zoom_lms.create_session(body)
    assert saved.status_code == 200, saved.text  # the admin's save is not lost
    assert "will be created as soon as it is back" in saved.json()["message"]
    assert session_row(db)["meeting_pending"] == "create" and session_row(db)["meeting_id"] is None
    edited = zoom_lms.update_session("o-1", {**body, "Title": "Renamed during the outage"})
    assert edited.status_code == 200 and "will be created" in edited.json()["message"]

    runner = JobRunner(zoom_lms.client.app.state.ctx, "test-worker")
    run_due = lambda: zoom_lms.client.portal.call(runner.run_due)  # noqa: E731
    assert run_due() == {}  # the first retry waits its backoff
    for minute in range(1, 11):  # ten minutes of outage: every due retry fails and backs off
        clock.set(NOW + timedelta(minutes=minute))
        run_due()
    sync = [job for job in jobs(db) if job[0] == "meeting.sync"]
    assert sync[0][1] == "queued" and 3 <= sync[0][2] <= 6  # attempts so far, backing off
    assert session_row(db)["meeting_id"] is None

    zoom_recovers(zoom_simulator)
    clock.set(NOW + timedelta(minutes=30))
    assert run_due().get("done") == 1
    row = session_row(db)
    assert row["meeting_id"] and row["meeting_pending"] is None and row["meeting_error"] is None
    [meeting] = [m for m in zoom_simulator.state.snapshot()["meetings"] if not m["deleted"]]
    assert meeting["topic"] == "Renamed during the outage"  # the latest save, created once
    assert [job[1] for job in jobs(db) if job[0] == "meeting.sync"] == ["done"]


def test_a_cancel_during_an_outage_reaches_zoom_later(zoom_lms: Lms, zoom_simulator: ZoomSimulator, db: Db,
                                                      clock) -> None:
    assert zoom_lms.create_session(session_body("o-2", start=START,
                                                InstructorEmails="tess@example.com")).status_code == 200
    zoom_simulator.state.inject_fault(503, count=100_000, path="/meetings")
    cancelled = zoom_lms.cancel_session("o-2")
    assert cancelled.status_code == 200 and "will be cancelled" in cancelled.json()["message"]
    zoom_recovers(zoom_simulator)
    clock.set(NOW + timedelta(minutes=5))
    runner = JobRunner(zoom_lms.client.app.state.ctx, "test-worker")
    assert zoom_lms.client.portal.call(runner.run_due).get("done") == 1
    assert all(m["deleted"] for m in zoom_simulator.state.snapshot()["meetings"])
    assert session_row(db)["meeting_pending"] is None


def test_what_zoom_refuses_after_the_outage_ends_dead_with_the_reason_on_the_session(
        zoom_lms: Lms, zoom_simulator: ZoomSimulator, db: Db, clock) -> None:
    zoom_simulator.state.inject_fault(503, count=100_000, path="/meetings")
    zoom_lms.create_session(session_body("o-3", start=START, InstructorEmails="tess@example.com"))
    zoom_simulator.state.seed_user("tess@example.com", type=1)  # meanwhile her licence was taken away
    zoom_recovers(zoom_simulator)
    clock.set(NOW + timedelta(minutes=5))
    runner = JobRunner(zoom_lms.client.app.state.ctx, "test-worker")
    assert zoom_lms.client.portal.call(runner.run_due) == {"dead": 1}
    row = session_row(db)
    assert row["meeting_pending"] == "create" and "licen" in str(row["meeting_error"]).lower()
    assert [job[1] for job in jobs(db) if job[0] == "meeting.sync"] == ["dead"]


def test_a_request_zoom_refuses_outright_is_not_saved(zoom_lms: Lms, zoom_simulator: ZoomSimulator, db: Db) -> None:
    zoom_simulator.state.seed_user("tess@example.com", type=1)  # not an outage: Zoom says no to this host
    refused = zoom_lms.create_session(session_body("o-4", start=START, InstructorEmails="tess@example.com"))
    assert refused.status_code in (400, 500) and "message" not in refused.json()
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM sessions").scalar_one() == 0
        assert conn.exec_driver_sql("SELECT count(*) FROM jobs").scalar_one() == 0


def test_a_job_the_open_circuit_breaker_holds_back_keeps_its_attempts(
        zoom_lms: Lms, zoom_simulator: ZoomSimulator, db: Db, clock) -> None:
    """Nothing reaches Zoom while the breaker is open, so a job that meets it has not failed: it waits for the
    breaker's trial call rather than spending an attempt and backing off further."""
    zoom_simulator.state.inject_fault(503, count=100_000, path="/meetings")
    zoom_lms.create_session(session_body("o-5", start=START, InstructorEmails="tess@example.com"))
    account_breaker("zoom", zoom_simulator.config.account_id).open()  # as after five outages in a row
    clock.set(NOW + timedelta(minutes=5))
    runner = JobRunner(zoom_lms.client.app.state.ctx, "test-worker")
    assert zoom_lms.client.portal.call(runner.run_due) == {"queued": 1}
    with db.engine.connect() as conn:
        attempts, run_after, note = conn.exec_driver_sql(
            "SELECT attempts, run_after, last_error FROM jobs WHERE kind = 'meeting.sync'").one()
    assert attempts == 0 and "pausing calls" in note
    run_after = datetime.fromisoformat(str(run_after)).replace(tzinfo=None)  # SQLite answers text
    waits = (run_after - (NOW + timedelta(minutes=5)).replace(tzinfo=None)).total_seconds()
    assert 1 <= waits <= 30  # until the breaker lets a trial call through, not a backoff step


def test_attendance_for_a_part_whose_meeting_is_still_owed_says_so(
        zoom_lms: Lms, zoom_simulator: ZoomSimulator, db: Db, clock) -> None:
    zoom_simulator.state.inject_fault(503, count=100_000, path="/meetings")
    zoom_lms.create_session(session_body("o-6", start=NOW - timedelta(hours=3), InstructorEmails="tess@example.com"))
    waiting = zoom_lms.attendees("o-6")
    assert waiting.status_code == 404 and waiting.headers["Retry-After"] == "900"
    assert "has not been created yet" in waiting.text and "HTTP 503" in waiting.text  # why it is still owed
    clock.set(NOW + timedelta(days=3))  # the class is long over and no meeting ever existed: no one attended in one
    over = zoom_lms.attendees("o-6")
    assert over.status_code == 200 and over.json()["data"]["attendees"] == [], over.text
