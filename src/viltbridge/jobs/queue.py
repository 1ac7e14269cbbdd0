"""Huey as broker, worker pool and cron. It carries only "run job N" messages and the minute tick of the upkeep;
the job ledger in the database is the truth (Huey does not acknowledge messages, so a killed worker would
otherwise lose its task).

`VILTBRIDGE_QUEUE_URL` selects the backend: `sqlite:///path` (embedded), `postgresql://…` (the database itself,
tables `huey_*`) or `redis://…`. Unset: next to the database (a `*.queue.db` file beside a SQLite database, the
same PostgreSQL database otherwise).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sqlite3
import threading
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from huey import Huey, PostgresHuey, RedisExpireHuey, SqliteHuey, crontab  # type: ignore[import-untyped]
from huey.consumer import Consumer  # type: ignore[import-untyped]
from huey.storage import SqliteStorage  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from viltbridge.config import Settings

log = logging.getLogger("viltbridge.jobs")
T = TypeVar("T")

QUEUE_NAME = "viltbridge"


def queue_url(settings: Settings) -> str:
    if settings.queue_url:
        return settings.queue_url
    database = make_url(settings.database_url)
    if database.get_backend_name() == "sqlite":
        path = Path(database.database or "viltbridge.db")
        return f"sqlite:///{path.with_name(path.stem + '.queue.db')}"
    return settings.database_url


def make_huey(url: str) -> Huey:
    """The Huey instance for a queue URL; results are not kept (the ledger records outcomes)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database:
            raise ValueError("VILTBRIDGE_QUEUE_URL sqlite:/// needs a file path, e.g. sqlite:///viltbridge.queue.db")
        return SqliteHuey(QUEUE_NAME, filename=parsed.database, results=False, utc=True,
                          storage_class=_SqliteQueueStorage)
    if backend == "postgresql":
        dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        huey = PostgresHuey(QUEUE_NAME, dsn=dsn, results=False, utc=True, create_tables=False)
        _create_queue_tables(huey)
        return huey
    if backend in ("redis", "rediss"):
        return RedisExpireHuey(QUEUE_NAME, url=url, results=False, utc=True)
    raise ValueError(f"VILTBRIDGE_QUEUE_URL uses '{backend}'; use sqlite:///file, postgresql://… or redis://…")


class _SqliteQueueStorage(SqliteStorage):  # type: ignore[misc]
    """Huey's SQLite queue without an fsync per message: in WAL mode `synchronous=NORMAL` (as the database runs)
    commits without waiting for the disk, where Huey's default (FULL) waited 2-3 ms on every enqueue and every
    dequeue, with the queue's lock held (measured on these machines; 0.07 ms with NORMAL). A power cut may lose the
    last messages: that costs only time, as the ledger is the truth and the upkeep hands every due job to the
    queue each minute."""

    def _create_connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection = super()._create_connection()
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection


# Any 64-bit number that no other program locks on the same database.
_QUEUE_SCHEMA_LOCK = 0x7669_6C74_7175_6575  # "vilt" "queu"


def _create_queue_tables(huey: PostgresHuey) -> None:
    """Huey's tables, created one process at a time. Huey runs `CREATE TABLE IF NOT EXISTS` itself, which is not
    safe when processes start together on a fresh database (`serve --workers 2`, replicas and workers started at
    once): two of them both create the table's row type and one fails with a unique violation on `pg_type`,
    taking its server down. A transaction-level advisory lock makes the others wait, then find the tables there."""
    storage = huey.storage
    with storage.db(commit=True, close=True) as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_QUEUE_SCHEMA_LOCK,))
        for statement in storage.ddl:
            cursor.execute(statement)


def worker_name() -> str:
    """Who holds a lease, as an admin reads it: host, process and thread."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"


class JobQueue:
    """The Huey tasks of viltbridge, bound to whichever runtime this process runs (`attach`)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.huey = make_huey(url)
        self._runtime: Any = None  # jobs.runtime.JobRuntime, set by attach() in processes that run jobs
        self.run_job = self.huey.task(name="run_job")(self._run_job)
        self.upkeep = self.huey.periodic_task(crontab(minute="*"), name="upkeep")(self._upkeep)

    def attach(self, runtime: Any) -> None:
        self._runtime = runtime

    def _run_job(self, job_id: int) -> None:
        if self._runtime is None:
            raise RuntimeError("this process runs no jobs (serve --no-worker); a worker will pick the job up")
        self._runtime.run_job(job_id)

    def _upkeep(self) -> None:
        if self._runtime is not None:
            self._runtime.upkeep()

    def kick(self, job_ids: Sequence[int], eta: datetime | None = None) -> None:
        """Hand jobs to the workers, now or at `eta`. A lost message costs only time: the upkeep dispatches every
        due job each minute, and a second message for one job is harmless (one claim wins)."""
        for job_id in job_ids:
            try:
                if eta is not None and eta > datetime.now(UTC):
                    self.run_job.schedule(args=(job_id,), eta=eta)
                else:
                    self.run_job(job_id)
            except Exception as exc:  # the queue backend is down: the upkeep will dispatch it
                log.warning("could not hand job #%d to the queue (%s); the upkeep will", job_id, exc)

    def consumer(self, workers: int, *, own_signals: bool = False) -> QuietConsumer:
        # Polling backends (SQLite) look for work at most a second apart; PostgreSQL and Redis block until a
        # message arrives.
        return QuietConsumer(self.huey, install_signal_handlers=own_signals, workers=workers, worker_type="thread",
                             periodic=True, initial_delay=0.05, backoff=1.5, max_delay=1.0, check_worker_health=True)

    def close(self) -> None:
        try:
            self.huey.storage.close()
        except Exception:  # closing a broken connection may fail too; nothing to do about it
            log.debug("queue storage close failed", exc_info=True)


class QuietConsumer(Consumer):  # type: ignore[misc]
    """Huey's consumer without its signal handlers: inside `viltbridge serve` uvicorn owns the signals (Huey's
    would replace them, and they can be set only from the main thread anyway)."""

    def __init__(self, huey: Huey, *, install_signal_handlers: bool = False, **options: Any) -> None:
        super().__init__(huey, **options)
        self._install_signal_handlers = install_signal_handlers

    def _set_signal_handlers(self) -> None:
        if self._install_signal_handlers:
            super()._set_signal_handlers()


def run_on(loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run a coroutine on `loop` from another thread (a Huey worker) and wait for its result."""
    return asyncio.run_coroutine_threadsafe(work, loop).result(timeout)
