"""Owed work an admin acts on: a cancelled job is a state of the job ledger that nothing runs and the nightly
reconciliation does not ask for again behind the admin's back, while a new request for the same work from the LMS
queues it afresh; retrying it undoes the cancel. Only jobs of the named connection are reachable."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.conftest import NOW, Db, Lms, session_body
from viltbridge.app import dead_jobs
from viltbridge.core.errors import InvalidInput, NotFound
from viltbridge.jobs.runner import RECONCILE_AT_HOUR, JobRunner


def job_of(db: Db, kind: str) -> tuple[int, str]:
    with db.engine.connect() as conn:
        found = conn.execute(sa.text("SELECT id, state FROM jobs WHERE kind = :kind"), {"kind": kind}).one()
    return int(found[0]), str(found[1])


def call(client: TestClient, use_case: Any, *args: Any, **kwargs: Any) -> Any:
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    return client.portal.call(partial(use_case, ctx, *args, **kwargs))  # type: ignore[union-attr]


def nightly_upkeep(client: TestClient, clock: Any, days: int) -> dict[str, int]:
    clock.set((NOW + timedelta(days=days)).replace(hour=RECONCILE_AT_HOUR, minute=5))
    runner = JobRunner(client.app.state.ctx, "test-worker")  # type: ignore[attr-defined]
    return dict(client.portal.call(runner.upkeep))  # type: ignore[union-attr]


def test_a_cancelled_job_is_never_run_nor_asked_for_again_by_the_nightly_reconciliation(
        client: TestClient, db: Db, lms: Lms, clock: Any) -> None:
    assert lms.create_session(session_body("soon-1", start=NOW + timedelta(days=3))).status_code == 200
    assert nightly_upkeep(client, clock, 1)["reconciled"] >= 1  # the upcoming meeting is to be checked
    check_id, state = job_of(db, "meeting.check")
    assert state == "queued"
    call(client, dead_jobs.cancel, "acme", check_id, actor="ada@example.com")
    assert job_of(db, "meeting.check") == (check_id, "cancelled")

    runner = JobRunner(client.app.state.ctx, "test-worker")  # type: ignore[attr-defined]
    assert client.portal.call(runner.run, check_id) is None  # type: ignore[union-attr]  # not there for the taking
    nightly_upkeep(client, clock, 2)
    assert job_of(db, "meeting.check") == (check_id, "cancelled")  # not asked for again behind the admin's back
    assert client.portal.call(runner.run_due) == {}  # type: ignore[union-attr]

    with pytest.raises(InvalidInput, match="is cancelled now, so it cannot be cancelled"):
        call(client, dead_jobs.cancel, "acme", check_id, actor="ada@example.com")
    with pytest.raises(NotFound, match="has no job"):
        call(client, dead_jobs.run_now, "acme-other", check_id, actor="ada@example.com")
    call(client, dead_jobs.run_now, "acme", check_id, actor="ada@example.com")  # the admin changes their mind
    assert job_of(db, "meeting.check") == (check_id, "queued")


def test_a_new_request_from_the_lms_queues_cancelled_work_afresh(client: TestClient, db: Db, lms: Lms) -> None:
    body = session_body("soon-2", start=NOW + timedelta(days=3))
    assert lms.create_session(body).status_code == 200
    collect_id, _ = job_of(db, "attendance.collect")
    call(client, dead_jobs.cancel, "acme", collect_id, actor="ada@example.com")
    assert job_of(db, "attendance.collect") == (collect_id, "cancelled")
    assert lms.update_session("soon-2", {**body, "Title": "Renamed"}).status_code == 200
    assert job_of(db, "attendance.collect") == (collect_id, "queued")  # the LMS asked again: the work is owed again
    with db.engine.connect() as conn:
        actions = [row[0] for row in conn.execute(sa.text("SELECT action FROM audit_log WHERE target = :job"),
                                                  {"job": f"job:{collect_id}"})]
    assert actions == ["job.cancel"]
