"""Nightly reconciliation against Zoom: a meeting someone deleted in Zoom is created again, one someone changed
there is put back to what the LMS scheduled, and one in step is left alone."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import NOW, Db, Lms, session_body
from tests.providers.zoom.conftest import api_client
from viltbridge.jobs.runner import JobRunner
from viltbridge.providers.zoom.simulator import ZoomSimulator
from viltbridge.store import reconcile

START = NOW + timedelta(days=2)


@pytest.fixture
def zoom_lms(zoom_lms: Lms) -> Lms:
    assert zoom_lms.add_instructor("tess@example.com", "Tess", "Teacher").status_code == 200
    for name in ("deleted", "changed", "untouched"):
        assert zoom_lms.create_session(session_body(name, start=START, minutes=60, Title=f"Class {name}",
                                                    InstructorEmails="tess@example.com")).status_code == 200
    return zoom_lms


def meetings(db: Db) -> dict[str, str]:
    with db.engine.connect() as conn:
        return dict(conn.exec_driver_sql("SELECT external_id, meeting_id FROM sessions").all())


def test_the_nightly_check_repairs_what_was_changed_at_zoom(zoom_lms: Lms, zoom_simulator: ZoomSimulator,
                                                            db: Db) -> None:
    before = meetings(db)
    with api_client(zoom_simulator) as api:  # someone at the customer edits Zoom directly
        assert api.delete(f"/meetings/{before['deleted']}").status_code == 204
        assert api.patch(f"/meetings/{before['changed']}", json={"topic": "Renamed in Zoom",
                                                                  "duration": 30}).status_code == 204
    runner = JobRunner(zoom_lms.client.app.state.ctx, "nightly")
    portal = zoom_lms.client.portal
    assert portal.call(runner.upkeep)["reconciled"] >= 3  # one check per upcoming meeting, and the owed work
    assert portal.call(runner.run_due) == {"done": 3}  # the checks: two find drift and each asks a meeting.sync
    assert portal.call(runner.run_due) == {"done": 2}  # the repairs
    after = meetings(db)
    assert after["untouched"] == before["untouched"] and after["changed"] == before["changed"]
    assert after["deleted"] != before["deleted"]  # created again
    with api_client(zoom_simulator) as api:
        changed = api.get(f"/meetings/{after['changed']}").json()
        recreated = api.get(f"/meetings/{after['deleted']}").json()
    assert (changed["topic"], changed["duration"]) == ("Class changed", 60)
    assert recreated["topic"] == "Class deleted"
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM sessions WHERE meeting_pending IS NOT NULL").scalar_one() == 0
        notes = list(conn.exec_driver_sql("SELECT last_error FROM jobs WHERE kind = 'meeting.check'").scalars())
    assert notes == [None, None, None]  # done jobs keep no error; what was found is in the log


def test_reconciling_again_asks_only_for_what_has_no_live_job(zoom_lms: Lms, db: Db) -> None:
    with db.session() as s, s.begin():
        first = reconcile.owed_work(s, NOW)
    with db.session() as s, s.begin():
        again = reconcile.owed_work(s, NOW)
    assert first == 3  # a check per upcoming meeting
    assert again == 0  # each has its check queued now
