"""`make bench` (jobs): job throughput per queue backend, through the job ledger and Huey with real workers.

For each backend: a database of the run's own, BENCH_JOB_WORKERS `viltbridge worker` processes with
BENCH_JOB_THREADS threads each, then BENCH_JOBS jobs written to the ledger in one transaction and handed to the
queue (as a save does), timed until the ledger records every one done. The jobs are `meeting.check` jobs for a
session that no longer exists: the handler returns at once, so this measures the job machinery (queue hand-off,
lease claim, handler dispatch, outcome recorded in the ledger), not provider calls. Backends:
- sqlite: SQLite database, SQLite queue (embedded mode's storage);
- postgresql: PostgreSQL database, queue in the same database (tables huey_*);
- redis: PostgreSQL database, Redis queue (the scale-out configuration).
Writes bench/results/jobs.json.

Environment: BENCH_JOBS (2000), BENCH_JOB_WORKERS (2), BENCH_JOB_THREADS (2), BENCH_JOB_BACKENDS
(sqlite,postgresql,redis), BENCH_POSTGRES_URL, BENCH_REDIS_URL (database 14 of the local Redis; flushed).
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession

from bench.processes import (
    REDIS_URL,
    STARTUP_SECONDS,
    VILTBRIDGE,
    BenchError,
    fresh_postgres_database,
    machine,
    start,
    viltbridge_env,
    write_results,
)
from viltbridge.core.models import JobRequest
from viltbridge.jobs.queue import JobQueue
from viltbridge.store import job_ledger as ledger
from viltbridge.store import migrate
from viltbridge.store.db import sync_engine

JOBS = int(os.environ.get("BENCH_JOBS", "2000"))
WORKERS = int(os.environ.get("BENCH_JOB_WORKERS", "2"))
THREADS = int(os.environ.get("BENCH_JOB_THREADS", "2"))
BACKENDS = [name.strip() for name in os.environ.get("BENCH_JOB_BACKENDS", "sqlite,postgresql,redis").split(",")]
TIMEOUT_SECONDS = float(os.environ.get("BENCH_JOB_TIMEOUT_SECONDS", "600"))
GONE_SESSION = 2**31 - 1  # no session has this id: the handler finds nothing to check


@contextmanager
def storage(backend: str, tmp: Path) -> Iterator[tuple[str, str]]:
    """(database URL, queue URL) for a backend."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'bench.db'}", f"sqlite:///{tmp / 'bench.queue.db'}"
    elif backend in ("postgresql", "redis"):
        with fresh_postgres_database("vb_bench_jobs") as url:
            yield url, (url if backend == "postgresql" else REDIS_URL)
    else:
        raise BenchError(f"BENCH_JOB_BACKENDS names '{backend}'; use sqlite, postgresql and/or redis")


def wait_for_log(path: Path, text: str, process: Any, seconds: float = STARTUP_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while text not in path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"the worker did not start (it exited, or said nothing of '{text}' within {seconds:.0f} s)"
                             f":\n{path.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)


def count_states(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        counts = conn.execute(sa.text("SELECT state, count(*) FROM jobs GROUP BY state"))
        return {state: count for state, count in counts}


def bench_backend(backend: str) -> dict[str, Any]:
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"viltbridge-jobs-{backend}-")))
        database_url, queue = stack.enter_context(storage(backend, tmp))
        migrate.upgrade(database_url)
        fresh_queue = JobQueue(queue)
        fresh_queue.huey.flush()  # messages left by an earlier run name jobs of another database
        stack.callback(fresh_queue.close)
        env = viltbridge_env(tmp, database_url, VILTBRIDGE_QUEUE_URL=queue, VILTBRIDGE_WORKER_THREADS=str(THREADS),
                             VILTBRIDGE_SECRET_KEY="")
        for number in range(WORKERS):
            log = tmp / f"worker{number}.log"
            worker = start(stack, [VILTBRIDGE, "worker"], env, log)
            wait_for_log(log, "worker taking jobs", worker)
        engine = sync_engine(database_url)
        stack.callback(engine.dispose)
        now = datetime.now(UTC)
        began = time.perf_counter()
        with OrmSession(engine) as db, db.begin():
            ids = [ledger.enqueue(db, JobRequest("meeting.check", f"bench:{n}", {"session_id": GONE_SESSION}, now),
                                  now) for n in range(JOBS)]
        written = time.perf_counter()
        fresh_queue.kick(ids)
        handed = time.perf_counter()
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while (states := count_states(engine)).get(ledger.DONE, 0) < JOBS:
            if time.monotonic() > deadline or states.get(ledger.DEAD):
                raise BenchError(f"{backend}: jobs did not all finish (states {states}); worker logs in {tmp}:\n"
                                 + (tmp / "worker0.log").read_text(errors="replace")[-2000:])
            time.sleep(0.05)
        finished = time.perf_counter()
        with engine.connect() as conn:
            attempts = conn.execute(sa.text("SELECT sum(attempts) FROM jobs")).scalar_one()
    total = finished - began
    return {
        "database": database_url.split(":", 1)[0], "queue": queue.split(":", 1)[0], "jobs": JOBS,
        "worker_processes": WORKERS, "threads_per_worker": THREADS,
        "ledger_write_seconds": round(written - began, 3), "queue_handoff_seconds": round(handed - written, 3),
        "total_seconds": round(total, 3), "jobs_per_second": round(JOBS / total, 1),
        "jobs_per_second_after_handoff": round(JOBS / (finished - written), 1),
        "failed_attempts": int(attempts or 0),  # the ledger counts an attempt when a run fails
    }


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.monotonic()
    date = datetime.now(UTC).isoformat(timespec="seconds")
    results: dict[str, Any] = {}
    try:
        for backend in BACKENDS:
            results[backend] = bench_backend(backend)
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    rates = {name: result["jobs_per_second"] for name, result in results.items()}
    ratios = {f"{name} / sqlite": round(rate / rates["sqlite"], 2) for name, rate in rates.items()
              if name != "sqlite" and "sqlite" in rates}
    report = {
        "benchmark": f"{JOBS} no-op jobs (meeting.check of a session that is gone) through the job ledger and Huey, "
                     f"{WORKERS} `viltbridge worker` processes x {THREADS} threads, per queue backend",
        "date": date,
        "machine": machine(),
        "results": results,
        "ratios": ratios,
        "duration_seconds": round(time.monotonic() - began, 1),
    }
    path = write_results("jobs", report)
    print(f"job throughput ({JOBS} jobs, {WORKERS} workers x {THREADS} threads)")
    for name, result in results.items():
        print(f"  {name:11} {result['jobs_per_second']:8.1f} jobs/s   {result['total_seconds']:7.2f} s (ledger write "
              f"{result['ledger_write_seconds']:.2f} s, hand-off {result['queue_handoff_seconds']:.2f} s)")
    print(f"  written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
