"""`viltbridge jobs list|dead|retry` and `viltbridge sync attendance`, as an operator runs them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session as OrmSession

from tests.conftest import Lms, session_body
from viltbridge.config import Settings
from viltbridge.core.clock import SystemClock
from viltbridge.core.models import JobRequest
from viltbridge.store import job_ledger
from viltbridge.store.db import sync_engine
from viltbridge.web.app import create_app


def lms_for(run, name: str) -> tuple[TestClient, Lms]:
    created = json.loads(run("connection", "create", name, "--provider", "link", "--json").stdout)
    settings = Settings(_env_file=None, lms_path_prefix="/")  # type: ignore[call-arg]
    client = TestClient(create_app(settings, clock=SystemClock()))
    return client, Lms(client, created["username"], created["password"])


def test_sync_attendance_collects_ended_parts_now_and_says_what_happened(run) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    client, acme = lms_for(run, "acme")
    with client:
        acme.create_session(session_body("ended", start=now - timedelta(hours=3)))
        acme.create_session(session_body("long-ago", start=now - timedelta(days=30)))
        acme.create_session(session_body("upcoming", start=now + timedelta(hours=3)))
    other_client, other = lms_for(run, "other")
    with other_client:
        other.create_session(session_body("elsewhere", start=now - timedelta(hours=2)))
    synced = json.loads(run("sync", "attendance", "--connection", "acme", "--json").stdout)
    assert [(row["session"], row["state"]) for row in synced] == [("ended", "done")]
    everything = json.loads(run("sync", "attendance", "--since", (now - timedelta(days=31)).date().isoformat(),
                                "--json").stdout)
    assert {row["session"] for row in everything} == {"ended", "long-ago", "elsewhere"}
    listed = json.loads(run("jobs", "list", "--state", "done", "--kind", "attendance.collect", "--json").stdout)
    assert len(listed) == 3 and all(job["state"] == "done" for job in listed)
    assert "no connection named 'nope'" in run("sync", "attendance", "--connection", "nope", ok=False).output
    assert "not a date" in run("sync", "attendance", "--since", "yesterday", ok=False).output


def test_dead_jobs_are_listed_with_their_reason_and_can_be_retried(run, database_url: str) -> None:
    run("migrate")
    now = datetime.now(UTC)
    engine = sync_engine(database_url)
    with OrmSession(engine) as db, db.begin():
        job_id = job_ledger.enqueue(db, JobRequest("meeting.sync", "meeting.sync:x", {"session_id": 1}, now), now)
        job_ledger.claim(db, job_id, "w", now, timedelta(minutes=1))
        job_ledger.bury(db, job_id, "w", now, "Zoom says host x is not a licensed user")
    engine.dispose()
    [dead] = json.loads(run("jobs", "dead", "--json").stdout)
    assert (dead["kind"], dead["last_error"]) == ("meeting.sync", "Zoom says host x is not a licensed user")
    assert "meeting.sync" in run("jobs", "dead").stdout  # the table an operator reads
    assert f"queued again: {job_id}" in run("jobs", "retry", str(job_id)).stdout
    assert "left alone" in run("jobs", "retry", str(job_id)).stdout  # queued already
    assert json.loads(run("jobs", "list", "--json").stdout)[0]["state"] == "queued"
    assert "no job 999" in run("jobs", "retry", "999", ok=False).output
    assert "unknown state" in run("jobs", "list", "--state", "stuck", ok=False).output
    assert "--all-dead" in run("jobs", "retry", ok=False).output
