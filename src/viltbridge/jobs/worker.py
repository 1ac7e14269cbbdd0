"""`viltbridge worker`: a process that only runs background jobs (scale-out mode). Any number of them may run
against one database and queue; the ledger makes each job's effect happen once, and periodic work run once per
slot."""

from __future__ import annotations

import asyncio
import logging
import threading

from viltbridge.config import Settings
from viltbridge.core.clock import SystemClock
from viltbridge.jobs.queue import JobQueue, queue_url, run_on
from viltbridge.jobs.runtime import JobRuntime
from viltbridge.keys import open_keyring
from viltbridge.providers.http import share_limits_through
from viltbridge.providers.url_guard import UrlPolicy, guard_provider_urls
from viltbridge.store.db import Database, DatabaseTimeouts
from viltbridge.web.context import AppContext

log = logging.getLogger("viltbridge.jobs")


def run_worker(settings: Settings, threads: int) -> None:
    """Take jobs from the queue until SIGINT (running jobs finish first) or SIGTERM."""
    share_limits_through(settings.shared_rate_limit_url)
    guard_provider_urls(UrlPolicy.from_settings(settings))
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, name="jobs-loop", daemon=True)
    loop_thread.start()
    queue = JobQueue(queue_url(settings))
    database = Database(settings.database_url, DatabaseTimeouts.from_settings(settings))
    ctx = AppContext(settings=settings, keyring=open_keyring(settings), db=database, clock=SystemClock(),
                     public_url=settings.public_url or "http://127.0.0.1:8000", queue=queue)
    runtime = JobRuntime(ctx, queue, loop)
    loop.call_soon_threadsafe(runtime.catch_up)
    consumer = queue.consumer(threads, own_signals=True)
    log.info("worker taking jobs from %s with %d thread(s)", queue.huey.storage.__class__.__name__, threads)
    try:
        consumer.run()
    finally:
        run_on(loop, _close(ctx, database), timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(timeout=5)
        queue.close()


async def _close(ctx: AppContext, database: Database) -> None:
    await ctx.providers.aclose()
    await database.dispose()
