"""`make bench` (attendance collection): BENCH_MEETINGS (5,000) ended Zoom meetings collected by real
`viltbridge worker` processes against the Zoom simulator enforcing the plan's per-second limits, timed against the
theoretical minimum those limits allow.

Setup (not timed): the Zoom simulator on the real clock with reports processed at the end, rate limits off while
BENCH_MEETINGS meetings are created, held an hour ago and ended, each with BENCH_PARTICIPANTS participants; in
viltbridge a Zoom connection on the same plan and one session per meeting, written through the store as the LMS's
saves write them (session row + its `attendance.collect` job, due now, handed to the queue). Then the simulator's
limits go on and BENCH_COLLECT_WORKERS workers with BENCH_COLLECT_THREADS threads each start and collect: per job
the meeting's ended instances (`GET /past_meetings/{id}/instances`, Medium) and each instance's participants report
(`GET /report/meetings/{uuid}/participants`, Heavy), until the ledger records every job done. The simulator counts
the calls per category and the 429s it answered.

Timed from the workers' start (their start-up, `workers_ready_seconds` of it, is in the figure) until the ledger
records every job done. Theoretical minimum: for each category, calls made / the plan's per-second limit; the
largest of those. Zoom's limits are per account, so more workers cannot beat it. The default plan is Business
(Heavy 40/s, Medium 60/s): 5,000 meetings take at least 125 s there; on Pro (Heavy 10/s) at least 500 s
(BENCH_ZOOM_PLAN=pro). The learners
never launched through viltbridge, so every participant lands on the review list rather than the roster: the
provider calls and ledger writes are those of a real collection, the identity matching is not exercised here.

Environment: BENCH_MEETINGS (5000), BENCH_PARTICIPANTS (10), BENCH_ZOOM_PLAN (business), BENCH_COLLECT_WORKERS (1),
BENCH_COLLECT_THREADS (8), BENCH_COLLECT_TIMEOUT_SECONDS (1800).
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession

from bench.jobs import count_states, wait_for_log
from bench.launch_burst import zoom_settings
from bench.processes import (
    VILTBRIDGE,
    BenchError,
    create_connection,
    machine,
    start,
    viltbridge_env,
    write_results,
)
from viltbridge.config import Settings
from viltbridge.core.models import JobRequest, Meeting, Session
from viltbridge.jobs.queue import JobQueue, queue_url
from viltbridge.providers.zoom.simulator import ZoomSimulator, running_simulator
from viltbridge.providers.zoom.simulator.api import ApiCall, create_meeting
from viltbridge.providers.zoom.simulator.state import PLANS, ZoomApiError
from viltbridge.store import job_ledger as ledger
from viltbridge.store import migrate, repository
from viltbridge.store.db import sync_engine

MEETINGS = int(os.environ.get("BENCH_MEETINGS", "5000"))
PARTICIPANTS = int(os.environ.get("BENCH_PARTICIPANTS", "10"))
PLAN = os.environ.get("BENCH_ZOOM_PLAN", "business")
WORKERS = int(os.environ.get("BENCH_COLLECT_WORKERS", "1"))
THREADS = int(os.environ.get("BENCH_COLLECT_THREADS", "8"))
TIMEOUT_SECONDS = float(os.environ.get("BENCH_COLLECT_TIMEOUT_SECONDS", "1800"))
HOST = "tess@example.com"
CONNECTION = "collect"


class CallCounter:
    """Counts what the simulator's rate limiter is asked to charge, and the 429s it answers, per category."""

    def __init__(self, charge: Callable[[str, datetime], dict[str, str]]) -> None:
        self.charge_inner = charge
        self.calls: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.by_second: Counter[tuple[str, int]] = Counter()  # calls let through, per category and UTC second

    def __call__(self, category: str, now: datetime) -> dict[str, str]:
        self.calls[category] += 1
        self.by_second[category, int(now.timestamp())] += 1
        try:
            return self.charge_inner(category, now)
        except ZoomApiError:
            self.refused[category] += 1
            raise


def hold_meetings(sim: ZoomSimulator, starts_at: datetime, ends_at: datetime) -> list[Meeting]:
    """MEETINGS meetings held and ended in the simulator, each with PARTICIPANTS people who stayed a while."""
    state = sim.state
    meetings = []
    for number in range(MEETINGS):
        body = {"topic": f"Class {number}", "type": 2, "start_time": starts_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "duration": int((ends_at - starts_at).total_seconds() // 60), "timezone": "UTC"}
        with state.lock:
            status, created = create_meeting(state, ApiCall(path={"userId": HOST}, query={}, body=body))
        if status != 201:
            raise BenchError(f"the Zoom simulator refused a meeting: {status} {created}")
        meeting_id = created["id"]
        state.start_meeting(meeting_id, at=starts_at)
        for person in range(PARTICIPANTS):
            state.join(meeting_id, f"Learner {person}", email=f"learner{person}@example.com",
                       at=starts_at + timedelta(minutes=person % 15))
        state.end_meeting(meeting_id, at=ends_at)
        meetings.append(Meeting(provider="zoom", meeting_id=str(meeting_id), join_url=str(created["join_url"])))
    return meetings


def write_sessions(database_url: str, meetings: list[Meeting], starts_at: datetime, ends_at: datetime,
                   due: datetime) -> list[int]:
    """One session per meeting and its attendance job, as `services.save_session` writes them; the job ids."""
    engine = sync_engine(database_url)
    try:
        with OrmSession(engine) as db, db.begin():
            connection = repository.connection_row_by_name(db, CONNECTION)
            if connection is None:
                raise BenchError(f"the connection '{CONNECTION}' is missing")
            jobs = []
            for number, meeting in enumerate(meetings):
                saved = repository.save_session(db, Session(
                    connection_id=connection.id, external_id=f"class-{number}", title=f"Class {number}",
                    description="", creator_email="admin@example.com", starts_at=starts_at, ends_at=ends_at,
                    utc_offset_minutes=0, zone="UTC", instructor_emails=[HOST], meeting=meeting))
                jobs.append(ledger.enqueue(db, JobRequest(
                    "attendance.collect", f"attendance.collect:{saved.id}", {"session_id": saved.id}, due,
                    connection_id=connection.id, session_id=saved.id), due))
        return jobs
    finally:
        engine.dispose()


def hand_to_queue(env: dict[str, str], jobs: list[int]) -> None:
    """What the web tier does after a save: each job to the queue (the upkeep alone dispatches 500 a minute)."""
    queue = JobQueue(queue_url(Settings(database_url=env["VILTBRIDGE_DATABASE_URL"],
                                        _env_file=None)))  # type: ignore[call-arg]
    try:
        queue.kick(jobs)
    finally:
        queue.close()


def quota_use(counter: CallCounter, category: str, per_second: int) -> dict[str, Any]:
    """How the binding category's per-second quota was used, second by second, from the first call to the last:
    where the time above the minimum went (seconds not filled to the limit, and the start and end)."""
    seconds = sorted(second for name, second in counter.by_second if name == category)
    counts = [counter.by_second[category, second] for second in range(seconds[0], seconds[-1] + 1)]
    return {
        "seconds_with_calls": len(counts),
        "seconds_at_the_limit": sum(1 for count in counts if count >= per_second),
        "calls_short_of_the_limit": sum(max(0, per_second - count) for count in counts[1:-1]),
        "calls_per_second_histogram": dict(sorted(Counter(counts).items())),
    }


def collected(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {state: count for state, count in conn.execute(sa.text(
            "SELECT attendance_state, count(*) FROM sessions GROUP BY attendance_state"))}


def run() -> dict[str, Any]:
    if PLAN not in PLANS:
        raise BenchError(f"BENCH_ZOOM_PLAN={PLAN}; use one of {', '.join(PLANS)}")
    limits = dict(PLANS[PLAN].per_second)
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="viltbridge-collect-")))
        sim = stack.enter_context(running_simulator(plan=PLAN, auto_process_reports=True))
        sim.state.seed_user(HOST, first_name="Tess", last_name="Teacher")
        sim.state.set_plan(PLAN, enforce_rate_limits=False)  # the setup is not what is measured
        env = viltbridge_env(tmp, VILTBRIDGE_WORKER_THREADS=str(THREADS), VILTBRIDGE_SECRET_KEY="")
        create_connection(env, CONNECTION, "zoom", {**zoom_settings(sim), "plan": PLAN})
        database_url = env["VILTBRIDGE_DATABASE_URL"]
        migrate.upgrade(database_url)
        now = datetime.now(UTC).replace(microsecond=0)
        starts_at, ends_at = now - timedelta(hours=2), now - timedelta(hours=1)
        setup_began = time.perf_counter()
        meetings = hold_meetings(sim, starts_at, ends_at)
        hand_to_queue(env, write_sessions(database_url, meetings, starts_at, ends_at, due=now))
        setup_seconds = time.perf_counter() - setup_began

        sim.state.set_plan(PLAN, enforce_rate_limits=True)
        counter = CallCounter(sim.state.limiter.charge)
        sim.state.limiter.charge = counter  # type: ignore[method-assign]
        engine = sync_engine(database_url)
        stack.callback(engine.dispose)
        began = time.perf_counter()
        for number in range(WORKERS):
            log = tmp / f"worker{number}.log"
            worker = start(stack, [VILTBRIDGE, "worker"], env, log)
            wait_for_log(log, "worker taking jobs", worker)
        workers_ready = time.perf_counter() - began
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while (states := count_states(engine)).get(ledger.DONE, 0) < MEETINGS:
            if time.monotonic() > deadline or states.get(ledger.DEAD):
                raise BenchError(f"attendance jobs did not all finish (states {states}):\n"
                                 + (tmp / "worker0.log").read_text(errors="replace")[-3000:])
            time.sleep(0.2)
        seconds = time.perf_counter() - began
        sessions = collected(engine)
    minimum = {category: round(counter.calls[category] / per_second, 2) for category, per_second in limits.items()
               if counter.calls[category]}
    floor = max(minimum.values()) if minimum else 0.0
    binding = max(minimum, key=lambda category: minimum[category]) if minimum else None
    return {
        "plan": PLAN, "per_second_limits": limits, "meetings": MEETINGS, "participants_per_meeting": PARTICIPANTS,
        "worker_processes": WORKERS, "threads_per_worker": THREADS, "setup_seconds": round(setup_seconds, 1),
        "seconds": round(seconds, 1), "workers_ready_seconds": round(workers_ready, 1),
        "calls": dict(counter.calls), "refused_429": dict(counter.refused),
        "theoretical_minimum_seconds_by_category": minimum, "theoretical_minimum_seconds": floor,
        "binding_category_use": quota_use(counter, binding, limits[binding]) if binding else None,
        "ratio_to_minimum": round(seconds / floor, 2) if floor else None,
        "meetings_per_second": round(MEETINGS / seconds, 1), "sessions_by_attendance_state": sessions,
    }


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    date = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        result = run()
    except (BenchError, OSError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    report = {
        "benchmark": f"attendance collection for {MEETINGS} ended Zoom meetings by `viltbridge worker` under the "
                     f"{PLAN} plan's per-second limits, vs the theoretical minimum those limits allow",
        "date": date,
        "machine": machine(),
        **result,
    }
    path = write_results("attendance_collection", report)
    print(f"attendance collection ({MEETINGS} meetings, Zoom {PLAN} plan, {WORKERS} worker(s) x {THREADS} threads)")
    print(f"  {result['seconds']} s vs theoretical minimum {result['theoretical_minimum_seconds']} s "
          f"(ratio {result['ratio_to_minimum']}); calls {result['calls']}; 429s {result['refused_429']}")
    print(f"  sessions by attendance state {result['sessions_by_attendance_state']}")
    print(f"  written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
