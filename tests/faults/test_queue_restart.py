"""Redis (the job queue) restarting without persistence under `viltbridge worker` processes: the messages of jobs
queued before are gone, jobs saved while it is down cannot be handed over at all, and still every job is done,
once, through the job ledger (a worker's upkeep hands due jobs to the queue again); the LMS never notices."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import service_unavailable, session_body
from tests.jobs.test_worker_processes import Cluster
from tests.jobs.test_worker_processes import cluster as cluster  # the fixture
from tests.processes import wait_for
from tests.providers.conftest import zoom_simulator as zoom_simulator  # the fixture, used by `cluster`
from viltbridge.providers.zoom.simulator import ZoomSimulator

pytestmark = pytest.mark.scale_out
REDIS_START = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "",
               "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"]


def redis_answers() -> bool:
    ping = subprocess.run(["redis-cli", "-h", "127.0.0.1", "ping"], check=False, capture_output=True, text=True)
    return ping.stdout.strip() == "PONG"


def stop_redis_losing_everything() -> None:
    subprocess.run(["redis-cli", "-h", "127.0.0.1", "shutdown", "nosave"], check=False, capture_output=True)
    wait_for(lambda: not redis_answers(), seconds=60, what="Redis to stop")


def start_redis() -> None:
    """The machine's only Redis, started again exactly as CI starts it."""
    if not redis_answers():
        subprocess.run(REDIS_START, check=True, capture_output=True, timeout=30)
    wait_for(redis_answers, seconds=60, what="Redis to answer again")


def owed_meetings(cluster: Cluster) -> int:
    return int(cluster.query("SELECT count(*) FROM sessions WHERE meeting_pending IS NOT NULL")[0][0])


def test_jobs_whose_queue_messages_a_redis_restart_lost_are_done_once_each(
        cluster: Cluster, zoom_simulator: ZoomSimulator) -> None:
    if os.geteuid() != 0 or shutil.which("redis-server") is None or not os.path.isdir("/var/lib/redis"):
        service_unavailable("restarting Redis needs root and redis-server with /var/lib/redis")
    running_before = cluster.start_worker()
    zoom_simulator.state.inject_fault(503, count=100_000, path="/meetings")  # Zoom is down: meetings are owed
    start = datetime.now(UTC) + timedelta(days=2)

    def save(session_id: str, n: int) -> None:
        body = session_body(session_id, start=start + timedelta(hours=2 * n), InstructorEmails="tess@example.com")
        saved = cluster.lms.create_session(body)
        assert saved.status_code == 200 and "will be created" in saved.json()["message"], saved.text

    for n in range(3):
        save(f"before-{n}", n)  # their retries wait in Redis (scheduled), then Redis forgets them
    try:
        stop_redis_losing_everything()
        for n in range(3):
            save(f"during-{n}", 3 + n)  # saved; the queue cannot even be told
        assert running_before.poll() is None, f"a worker died when Redis went away:\n{cluster.logs()}"
    finally:
        start_redis()
    assert owed_meetings(cluster) == 6

    zoom_simulator.state.clear_faults()
    with cluster.engine.begin() as conn:  # due now rather than after their backoff
        conn.exec_driver_sql("UPDATE jobs SET run_after = now() WHERE kind = 'meeting.sync'")
    cluster.start_worker()  # its upkeep at start hands every due job to the (empty) queue again
    cluster.wait_for(lambda: owed_meetings(cluster) == 0, seconds=40,
                     what="every owed meeting to be created after the restart")
    assert running_before.poll() is None, f"the worker that lived through the restart died:\n{cluster.logs()}"
    live = [m for m in zoom_simulator.state.snapshot()["meetings"] if not m["deleted"]]
    assert len(live) == 6, live  # one meeting per session: nothing ran twice
    # done, and no attempt failed: each ran once (a second run would have found its meeting, not made one)
    assert sorted(cluster.query("SELECT state, attempts FROM jobs WHERE kind = 'meeting.sync'")) == [("done", 0)] * 6
    stored = {row[0] for row in cluster.query("SELECT meeting_id FROM sessions")}
    assert stored == {str(m["id"]) for m in live}
