"""Scale-out, for real: `viltbridge worker` processes on PostgreSQL (system of record) and Redis (queue), against
the Zoom simulator. A worker killed with SIGKILL mid-job loses nothing; two workers racing for one job run it once;
three workers run the periodic upkeep once per slot."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from tests.conftest import Lms, fresh_postgres_database, session_body
from tests.jobs.test_queue_backends import REDIS_URL, reachable_queue
from tests.processes import VILTBRIDGE, free_port, healthy, stop, wait_for
from tests.providers.conftest import zoom_settings
from tests.providers.conftest import zoom_simulator as zoom_simulator
from viltbridge.app import connections
from viltbridge.config import Settings
from viltbridge.core.clock import SystemClock
from viltbridge.jobs.queue import JobQueue
from viltbridge.providers.zoom.simulator import ZoomSimulator
from viltbridge.security.crypto import load_keyring
from viltbridge.store.db import sync_engine
from viltbridge.web.app import create_app

pytestmark = pytest.mark.scale_out
# Short, so the killed worker's job comes back soon; long enough that a live worker's run of a job (which keeps no
# lease renewal) ends within it on a busy machine, or it would be taken back and run twice.
LEASE_SECONDS = 10
JOBS_TABLE = "SELECT id, kind, state, attempts, run_after, last_error FROM jobs ORDER BY id"


@dataclass
class Cluster:
    settings: Settings
    engine: sa.Engine
    lms: Lms
    tmp: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self, *, debug: bool = False) -> subprocess.Popen[bytes]:
        env = {**os.environ, "VILTBRIDGE_DATABASE_URL": self.settings.database_url,
               "VILTBRIDGE_SECRET_KEY": self.settings.secret_key or "", "VILTBRIDGE_QUEUE_URL": REDIS_URL,
               "VILTBRIDGE_JOB_LEASE_SECONDS": str(LEASE_SECONDS), "VILTBRIDGE_WORKER_THREADS": "2",
               "VILTBRIDGE_LOG_LEVEL": "DEBUG" if debug else "INFO", "VILTBRIDGE_PROVIDER_ALLOW_LOOPBACK": "1"}
        log = (self.tmp / f"worker{len(self.workers)}.log").open("wb")
        worker = subprocess.Popen([str(VILTBRIDGE), "worker"], env=env, cwd=self.tmp, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        self.workers.append(worker)
        wait_for(lambda: "worker taking jobs" in self.log(worker), seconds=120,  # imports: slow on a busy machine
                 what=f"worker {worker.pid} to start", explain=lambda: self.log(worker)[-3000:])
        return worker

    def log(self, worker: subprocess.Popen[bytes]) -> str:
        return (self.tmp / f"worker{self.workers.index(worker)}.log").read_text(errors="replace")

    def logs(self) -> str:
        """The end of every process's log, for a failure message."""
        return "\n".join(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:])
                         for log in sorted(self.tmp.glob("*.log")))

    def wait_for(self, condition: Callable[[], bool], *, seconds: float = 60.0, what: str = "condition") -> None:
        """`wait_for`, and on a timeout the jobs table and every process's log say why."""
        wait_for(condition, seconds=seconds, what=what,
                 explain=lambda: f"jobs: {self.query(JOBS_TABLE)}\n{self.logs()}")

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql), params)]


@pytest.fixture
def cluster(postgres_template: str, zoom_simulator: ZoomSimulator, tmp_path: Path) -> Iterator[Cluster]:
    reachable_queue("redis", tmp_path)
    for database_url in fresh_postgres_database(postgres_template):
        settings = Settings(database_url=database_url, secret_key=Fernet.generate_key().decode(),
                            queue_url=REDIS_URL, key_file=tmp_path / "key", _env_file=None)  # type: ignore[call-arg]
        engine = sync_engine(database_url)
        # An account of its own: Redis keeps the rate-limit buckets of an account (its daily quota per host too)
        # across runs, so a shared simulator account would run out of meeting creates after a few runs a day.
        zoom_simulator.reset(start=datetime.now(UTC) - timedelta(hours=5),
                             account_id=f"simAccount{uuid.uuid4().hex[:11]}")
        zoom_simulator.state.seed_user("tess@example.com", first_name="Tess", last_name="Teacher")
        keyring = load_keyring(settings.secret_key, settings.key_file)
        from sqlalchemy.orm import Session as OrmSession

        with OrmSession(engine) as db, db.begin():
            created = connections.create(db, keyring, "acme-zoom", "zoom", zoom_settings(zoom_simulator))
            username, password = created.row.username, created.password
        # The LMS side: an API process of its own (no worker in it), on the real clock like the workers.
        with TestClient(create_app(settings, clock=SystemClock())) as client:
            lms = Lms(client, username, password)
            assert lms.add_instructor("tess@example.com", "Tess", "Teacher").status_code == 200
            running = Cluster(settings, engine, lms, tmp_path)
            try:
                yield running
            finally:
                for worker in running.workers:
                    stop(worker)
        engine.dispose()


def test_a_worker_killed_mid_job_loses_nothing(cluster: Cluster, zoom_simulator: ZoomSimulator) -> None:
    now = datetime.now(UTC)
    # A part that ended three hours ago: its attendance job is due at once.
    body = session_body("k-1", start=now - timedelta(hours=4), InstructorEmails="tess@example.com")
    zoom_simulator.state.inject_fault(delay=60.0, count=1, path="/past_meetings")  # Zoom hangs on the first ask
    assert cluster.lms.create_session(body).status_code == 200
    doomed = cluster.start_worker()
    collect_state = "SELECT state FROM jobs WHERE kind = 'attendance.collect'"
    cluster.wait_for(lambda: cluster.query(collect_state) == [("running",)], what="the first worker to take the job")
    cluster.wait_for(lambda: all(fault.remaining == 0 for fault in zoom_simulator.state.faults),
             what="the first worker's call to reach Zoom (and hang there)")
    os.killpg(doomed.pid, signal.SIGKILL)  # mid-job: it never answers
    doomed.wait()
    [(lease_until,)] = cluster.query("SELECT lease_until FROM jobs WHERE kind = 'attendance.collect'")
    wait_for(lambda: datetime.now(UTC) > lease_until, seconds=LEASE_SECONDS + 30,
             what="the lost job's lease to run out")
    cluster.start_worker()  # a new worker reaps the lost job at start and runs it
    cluster.wait_for(lambda: cluster.query("SELECT state FROM jobs WHERE kind = 'attendance.collect'") == [("done",)],
             what=f"the job to be done by the second worker; its log:\n{cluster.log(cluster.workers[-1])[-3000:]}")
    [(attempts, error)] = cluster.query("SELECT attempts, last_error FROM jobs WHERE kind = 'attendance.collect'")
    assert attempts == 1 and error is None  # the lost attempt counts; the run that finished it clears the error
    assert cluster.query("SELECT attendance_state FROM sessions") == [("final",)]
    reaped = [line for worker in cluster.workers for line in cluster.log(worker).splitlines() if "vanished" in line]
    assert len(reaped) == 1, reaped


def test_two_workers_racing_for_one_job_run_it_once(cluster: Cluster, zoom_simulator: ZoomSimulator) -> None:
    zoom_simulator.state.inject_fault(503, count=100_000, path="/meetings")
    start = datetime.now(UTC) + timedelta(days=2)
    saved = cluster.lms.create_session(session_body("r-1", start=start, InstructorEmails="tess@example.com"))
    assert "will be created" in saved.json()["message"]  # Zoom is down: the meeting is owed
    zoom_simulator.state.clear_faults()
    from viltbridge.providers.http import account_breaker

    account_breaker("zoom", zoom_simulator.config.account_id).close()
    cluster.start_worker(), cluster.start_worker()
    [(job_id,)] = cluster.query("SELECT id FROM jobs WHERE kind = 'meeting.sync'")
    with cluster.engine.begin() as conn:  # due now rather than after its backoff
        conn.execute(sa.text("UPDATE jobs SET run_after = :now WHERE id = :id"),
                     {"now": datetime.now(UTC), "id": job_id})
    queue = JobQueue(REDIS_URL)
    queue.kick([job_id] * 6)  # the same job handed out six times, to both workers
    # Every message taken (a claim on a job already done changes nothing) and the job done, not asked again.
    cluster.wait_for(lambda: queue.huey.pending_count() == 0
                     and cluster.query("SELECT state FROM jobs WHERE id = :id", id=job_id) == [("done",)],
                     what="every message for the job to be taken and the meeting job to be done")
    queue.close()
    meetings = [m for m in zoom_simulator.state.snapshot()["meetings"] if not m["deleted"]]
    assert len(meetings) == 1  # created once, however many workers were handed the job
    assert cluster.query("SELECT meeting_pending FROM sessions") == [(None,)]


def test_three_workers_run_the_periodic_upkeep_once_per_slot(cluster: Cluster) -> None:
    workers = [cluster.start_worker(debug=True) for _ in range(3)]

    def upkeep_lines() -> list[str]:
        return [line for worker in workers for line in cluster.log(worker).splitlines() if "upkeep slot" in line]

    # Huey's scheduler in each worker asks for the upkeep when it starts and every minute after (any worker may
    # take an ask off the queue): wait for every scheduler's second ask.
    cluster.wait_for(lambda: len(upkeep_lines()) >= 6, seconds=100, what="each worker's scheduler to ask twice")
    by_slot: dict[str, list[str]] = {}
    for line in upkeep_lines():
        slot = line.split("upkeep slot ")[1][:16]
        by_slot.setdefault(slot, []).append("ran" if " ran: " in line else "skipped")
    assert all(outcomes.count("ran") == 1 for outcomes in by_slot.values()), by_slot
    assert max(len(outcomes) for outcomes in by_slot.values()) >= 2, by_slot  # several asked, one worked
    slots = {row[0] for row in cluster.query("SELECT slot FROM periodic_runs WHERE name = 'upkeep'")}
    assert len(slots) == len(by_slot)


def test_two_api_processes_and_two_workers_lose_nothing_when_one_api_dies(
        cluster: Cluster, zoom_simulator: ZoomSimulator, tmp_path: Path) -> None:
    """The scale-out layout of the README: `serve --no-worker` twice behind a (here: round-robin) balancer, two
    workers, PostgreSQL and Redis. Zoom is down while the LMS saves; one API process dies; nothing is lost."""

    import httpx2

    apis = []
    for n in range(2):
        port = free_port()
        env = {**os.environ, "VILTBRIDGE_DATABASE_URL": cluster.settings.database_url,
               "VILTBRIDGE_SECRET_KEY": cluster.settings.secret_key or "", "VILTBRIDGE_QUEUE_URL": REDIS_URL,
               "VILTBRIDGE_PUBLIC_URL": f"http://127.0.0.1:{port}", "VILTBRIDGE_PROVIDER_ALLOW_LOOPBACK": "1"}
        log = (tmp_path / f"api{n}.log").open("wb")
        api = subprocess.Popen([str(VILTBRIDGE), "serve", "--no-worker", "--port", str(port)], env=env, cwd=tmp_path,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        cluster.workers.append(api)  # stopped with the workers
        apis.append((api, f"http://127.0.0.1:{port}"))
    for _, url in apis:
        cluster.wait_for(lambda url=url: healthy(url), what=f"API at {url}")
    cluster.start_worker(), cluster.start_worker()
    auth = cluster.lms.auth
    zoom_simulator.state.inject_fault(503, count=100_000, path="/meetings")
    start = datetime.now(UTC) + timedelta(days=3)
    with httpx2.Client(auth=auth, timeout=60) as http:
        for n in range(8):  # round robin over the two API processes
            saved = http.post(f"{apis[n % 2][1]}/session",
                              json=session_body(f"s-{n}", start=start, InstructorEmails="tess@example.com"))
            assert saved.status_code == 200 and "will be created" in saved.json()["message"], saved.text
        os.killpg(apis[0][0].pid, signal.SIGKILL)  # one API process dies
        zoom_simulator.state.clear_faults()
        with cluster.engine.begin() as conn:  # due now rather than after the backoff
            ids = [row[0] for row in conn.execute(sa.text(
                "UPDATE jobs SET run_after = now() WHERE kind = 'meeting.sync' RETURNING id"))]
        queue = JobQueue(REDIS_URL)
        queue.kick(ids)
        queue.close()
        cluster.wait_for(lambda: cluster.query("SELECT count(*) FROM sessions WHERE meeting_id IS NOT NULL") == [(8,)],
                 seconds=60, what="every owed meeting to be created by the workers")
        assert len([m for m in zoom_simulator.state.snapshot()["meetings"] if not m["deleted"]]) == 8
        launch = http.get(f"{apis[1][1]}/session/s-0/user/{_b64('kim@example.com')}/url")
        assert launch.status_code == 200
    assert cluster.query("SELECT state, count(*) FROM jobs WHERE kind = 'meeting.sync' GROUP BY state") == [
        ("done", 8)]


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()
