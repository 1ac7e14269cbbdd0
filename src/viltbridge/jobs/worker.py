"""`viltbridge worker`: a process that only runs background jobs (scale-out mode). Any number of them may run
against one database and queue; the ledger makes each job's effect happen once, and periodic work run once per
slot."""

from __future__ import annotations

import asyncio
import logging
import threading

from viltbridge.app.context import AppContext
from viltbridge.jobs.queue import JobQueue, run_on
from viltbridge.jobs.runtime import JobRuntime

log = logging.getLogger("viltbridge.jobs")


def take_jobs(ctx: AppContext, queue: JobQueue, threads: int) -> None:
    """Take jobs from the queue until SIGINT (running jobs finish first) or SIGTERM; then close the context (built by
    `viltbridge.bootstrap.run_worker`) on the loop the jobs ran on."""
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, name="jobs-loop", daemon=True)
    loop_thread.start()
    runtime = JobRuntime(ctx, queue, loop)
    loop.call_soon_threadsafe(runtime.catch_up)
    consumer = queue.consumer(threads, own_signals=True)
    log.info("worker taking jobs from %s with %d thread(s)", queue.huey.storage.__class__.__name__, threads)
    try:
        consumer.run()
    finally:
        run_on(loop, ctx.aclose(), timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(timeout=5)
