"""Where jobs run: Huey's worker threads hand each job to one asyncio loop (the server's own in embedded mode,
a dedicated one in `viltbridge worker`), so provider clients, their tokens and rate limits are shared."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from viltbridge.app.context import AppContext
from viltbridge.jobs.queue import JobQueue, QuietConsumer, run_on, worker_name
from viltbridge.jobs.runner import JobRunner

log = logging.getLogger("viltbridge.jobs")


class JobRuntime:
    def __init__(self, ctx: AppContext, queue: JobQueue, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.runner = JobRunner(ctx, worker_name(), lease=timedelta(seconds=ctx.settings.job_lease_seconds),
                                kick=queue.kick)
        queue.attach(self)

    def run_job(self, job_id: int) -> None:
        run_on(self.loop, self.runner.run(job_id))

    def catch_up(self) -> None:
        """One upkeep at start, not at the next minute: what fell due while no worker ran goes now."""
        task = self.loop.create_task(self.runner.upkeep(every_slot=False))
        task.add_done_callback(_log_failure)

    def upkeep(self) -> None:
        slot = self.runner.ctx.clock.now().strftime("%Y-%m-%d %H:%M")
        done = run_on(self.loop, self.runner.upkeep())
        if done is None:
            log.debug("upkeep slot %s: another worker has it", slot)
        else:
            log.debug("upkeep slot %s ran: %s", slot, done)


def start_embedded(ctx: AppContext, queue: JobQueue, workers: int) -> QuietConsumer:
    """Jobs inside `viltbridge serve`: Huey's consumer threads, running jobs on the server's loop."""
    runtime = JobRuntime(ctx, queue, asyncio.get_running_loop())
    consumer = queue.consumer(workers)
    consumer.start()
    runtime.catch_up()
    return consumer


def _log_failure(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("upkeep at start failed", exc_info=task.exception())
