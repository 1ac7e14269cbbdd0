"""The job system on each queue backend (SQLite, PostgreSQL, Redis) with Huey's real consumer threads inside the
server: a job written by an LMS call is handed to the queue, run once, and recorded in the ledger."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.conftest import NOW, POSTGRES_URL, Db, Lms, fresh_postgres_database, service_unavailable, session_body
from tests.processes import wait_for
from viltbridge.config import Settings
from viltbridge.jobs.queue import JobQueue
from viltbridge.web.app import create_app

REDIS_URL = "redis://127.0.0.1:6379/15"


def reachable_queue(backend: str, tmp_path: Path) -> str:
    url = {"sqlite": f"sqlite:///{tmp_path / 'queue.db'}", "postgresql": POSTGRES_URL, "redis": REDIS_URL}[backend]
    queue = JobQueue(url)
    try:
        queue.huey.flush()  # messages left by an earlier run name jobs of another database
    except Exception as exc:
        service_unavailable(f"{backend} queue at {url} is unreachable: {exc.__class__.__name__}: {exc}")
    finally:
        queue.close()
    return url


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def queue_settings(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    yield settings.model_copy(update={"queue_url": reachable_queue(request.param, tmp_path)})


def job_states(db: Db) -> list[tuple[str, str, int]]:
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql("SELECT kind, state, attempts FROM jobs ORDER BY id")]


def test_a_job_written_by_an_lms_call_runs_once_on_the_queue(queue_settings: Settings, db: Db, clock) -> None:
    credentials = db.create_connection()
    with TestClient(create_app(queue_settings, clock=clock, run_worker=True)) as client:
        lms = Lms(client, credentials["username"], credentials["password"])
        assert lms.create_session(session_body("q-1", start=NOW - timedelta(hours=2))).status_code == 200
        # The embedded consumer's first poll and the job's run: seconds on a quiet machine, more on a busy one.
        wait_for(lambda: job_states(db) == [("attendance.collect", "done", 0)], seconds=60,
                 what="the attendance job to be done", explain=lambda: f"jobs: {job_states(db)}")
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT attendance_state FROM sessions").scalar_one() == "final"


def test_processes_starting_together_on_a_fresh_postgresql_database_all_get_the_queue(postgres_template: str) -> None:
    """`serve --workers 2`, or replicas and workers started at once: Huey's own `CREATE TABLE IF NOT EXISTS`
    raced, and the loser's server went down at start-up (a unique violation on pg_type)."""
    starters = 8
    for _ in range(4):  # a race is a matter of timing: a few rounds, each on a database without the queue's tables
        with contextmanager(fresh_postgres_database)(postgres_template) as url:
            together = threading.Barrier(starters)

            def start(_: int, url: str = url, together: threading.Barrier = together) -> None:
                together.wait()
                JobQueue(url).close()

            with ThreadPoolExecutor(starters) as pool:
                list(pool.map(start, range(starters)))  # raises what any of them raised
            with sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1)).connect() as conn:
                assert conn.exec_driver_sql("SELECT to_regclass('huey_task')").scalar_one() == "huey_task"


def test_the_sqlite_queue_commits_without_waiting_for_the_disk(tmp_path: Path) -> None:
    """WAL with synchronous=NORMAL, as the database: Huey's default (FULL) waits for an fsync on every message."""
    queue = JobQueue(f"sqlite:///{tmp_path / 'queue.db'}")
    try:
        queue.kick([1, 2])
        connection = queue.huey.storage.conn
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert connection.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
        assert queue.huey.pending_count() == 2
    finally:
        queue.close()
