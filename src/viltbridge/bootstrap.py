"""The composition root: the one place that builds `AppContext` and what it needs (keyring, database, job queue,
clock), for `serve` (the web app's lifespan), `viltbridge worker` and the CLI's commands that run use cases.

What only `serve` and the worker need (the job queue and runtime, the provider HTTP layer) is imported inside the
functions that use it: the CLI imports this module for `sync attendance` and loads no more than that command did
before (tests/test_cli_startup.py keeps `--help` free of the application)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from viltbridge.app.context import AppContext, Queue
from viltbridge.config import Settings
from viltbridge.core.clock import Clock, SystemClock
from viltbridge.security.crypto import Keyring, load_keyring
from viltbridge.store import repository
from viltbridge.store.db import Database, DatabaseTimeouts

# Where launch links point without VILTBRIDGE_PUBLIC_URL: `serve`'s default address.
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"


def open_keyring(settings: Settings) -> Keyring:
    """The server's keyring; a key file is created only while the database holds no encrypted data yet."""
    if settings.secret_key or settings.key_file.exists():
        return load_keyring(settings.secret_key, settings.key_file)
    return load_keyring(None, settings.key_file, may_create=not repository.has_connections(settings.database_url))


def app_context(settings: Settings, *, keyring: Keyring | None = None, clock: Clock | None = None,
                public_url: str | None = None, queue: Queue | None = None) -> AppContext:
    """The context the use cases run with; `aclose()` it on the event loop that used it."""
    return AppContext(
        settings=settings,
        keyring=keyring if keyring is not None else open_keyring(settings),
        db=Database(settings.database_url, DatabaseTimeouts.from_settings(settings)),
        clock=clock if clock is not None else SystemClock(),
        public_url=public_url or settings.public_url or DEFAULT_PUBLIC_URL,
        queue=queue,
    )


def guard_provider_calls(settings: Settings) -> Callable[[], None]:
    """For this process: provider rate limits shared through Redis when one is configured, and provider URLs held
    to the deployment's policy (the SSRF guard). Returns what puts the previous state back."""
    from viltbridge.providers.http import share_limits_through
    from viltbridge.providers.url_guard import UrlPolicy, guard_provider_urls

    share_limits_through(settings.shared_rate_limit_url)
    previous_url_policy = guard_provider_urls(UrlPolicy.from_settings(settings))

    def restore() -> None:
        share_limits_through(None)
        guard_provider_urls(previous_url_policy)

    return restore


@asynccontextmanager
async def serving(settings: Settings, keyring: Keyring, *, clock: Clock | None = None, public_url: str | None = None,
                  run_worker: bool = False) -> AsyncIterator[AppContext]:
    """What `serve`'s application holds while it runs: the context with its database and job queue, the provider
    guards, and with `run_worker` the job workers inside this process (embedded mode)."""
    from viltbridge.jobs.queue import JobQueue, queue_url
    from viltbridge.jobs.runtime import start_embedded

    restore = guard_provider_calls(settings)
    queue = JobQueue(queue_url(settings))
    ctx = app_context(settings, keyring=keyring, clock=clock, public_url=public_url, queue=queue)
    consumer = start_embedded(ctx, queue, settings.worker_threads) if run_worker else None
    try:
        yield ctx
    finally:
        if consumer is not None:
            await asyncio.to_thread(consumer.stop, True)  # running jobs finish on this (still running) loop
        await ctx.aclose()
        queue.close()
        restore()


def run_worker(settings: Settings, threads: int) -> None:
    """`viltbridge worker`: take jobs from the queue until SIGINT (running jobs finish first) or SIGTERM."""
    from viltbridge.jobs.queue import JobQueue, queue_url
    from viltbridge.jobs.worker import take_jobs

    guard_provider_calls(settings)  # for the life of the process
    queue = JobQueue(queue_url(settings))
    try:
        take_jobs(app_context(settings, queue=queue), queue, threads)
    finally:
        queue.close()
