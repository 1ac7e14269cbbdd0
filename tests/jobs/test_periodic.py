"""Periodic upkeep: launch-only attendance becomes final after a part ends, without any LMS call."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import NOW, Db, Lms, session_body
from tests.processes import wait_for
from viltbridge.jobs.runner import JobRunner


def states(db: Db) -> dict[str, str]:
    with db.engine.connect() as conn:
        return dict(conn.exec_driver_sql("SELECT external_id, attendance_state FROM sessions").all())


def test_ended_parts_become_final_and_others_do_not(lms: Lms, db: Db, clock) -> None:
    lms.create_session(session_body("ended", start=NOW - timedelta(hours=2)))
    lms.create_session(session_body("running", start=NOW - timedelta(minutes=10)))
    lms.create_session(session_body("cancelled", start=NOW - timedelta(hours=2)))
    lms.cancel_session("cancelled")
    runner = JobRunner(lms.client.app.state.ctx, "test")
    assert lms.client.portal.call(runner.upkeep)["finalized"] == 1
    assert states(db) == {"ended": "final", "running": "collecting", "cancelled": "collecting"}
    assert lms.client.portal.call(runner.upkeep) is None  # this minute's upkeep has run
    clock.set(NOW + timedelta(minutes=1))
    assert lms.client.portal.call(runner.upkeep)["finalized"] == 0  # idempotent
    clock.set(NOW + timedelta(hours=1))
    assert lms.client.portal.call(runner.upkeep)["finalized"] == 1
    assert states(db)["running"] == "final"


def test_the_server_runs_upkeep_in_process_unless_told_not_to(settings, clock, db: Db) -> None:
    import time

    from fastapi.testclient import TestClient

    from viltbridge.web.app import create_app

    credentials = db.create_connection()
    with TestClient(create_app(settings, clock=clock)) as client:  # no worker
        Lms(client, credentials["username"], credentials["password"]).create_session(
            session_body("ended", start=NOW - timedelta(hours=2)))
        time.sleep(0.3)
    assert states(db) == {"ended": "collecting"}
    with TestClient(create_app(settings, clock=clock, run_worker=True)):
        # The embedded worker's catch-up upkeep: seconds on a quiet machine, more on a busy one.
        wait_for(lambda: states(db)["ended"] == "final", seconds=60, what="the in-process upkeep to finalize",
                 explain=lambda: f"sessions: {states(db)}")
    assert states(db) == {"ended": "final"}
