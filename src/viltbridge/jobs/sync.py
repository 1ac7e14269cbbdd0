"""`viltbridge sync attendance`: collect attendance now for parts that ended, through the same jobs the workers
run (so the ledger records it, and a worker running the same job at the same moment cannot double it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession

from viltbridge.core import jobs
from viltbridge.core.models import SessionStatus
from viltbridge.jobs.runner import JobRunner
from viltbridge.store import job_ledger as ledger
from viltbridge.store.tables import ConnectionRow, SessionRow


@dataclass(frozen=True)
class Synced:
    connection: str
    session: str
    state: str  # the job's state after the run: done, queued (not final yet: a worker asks again), dead, busy
    note: str


def _ask(db: OrmSession, connection: str | None, since: datetime, now: datetime) -> list[tuple[int, str, str]]:
    query = (sa.select(SessionRow.id, SessionRow.connection_id, SessionRow.external_id, ConnectionRow.name)
             .join(ConnectionRow, ConnectionRow.id == SessionRow.connection_id)
             .where(SessionRow.status == SessionStatus.SCHEDULED.value, SessionRow.ends_at >= since,
                    SessionRow.ends_at <= now)
             .order_by(SessionRow.ends_at))
    if connection is not None:
        query = query.where(ConnectionRow.name == connection)
    asked = []
    for session_id, connection_id, external_id, name in db.execute(query).all():
        job_id = ledger.enqueue(db, jobs.session_job(jobs.ATTENDANCE_COLLECT, session_id, connection_id, now), now)
        asked.append((job_id, name, external_id))
    return asked


async def sync_attendance(runner: JobRunner, connection: str | None, since: datetime,
                          progress: Callable[[int, int], None] = lambda done, total: None) -> list[Synced]:
    ctx = runner.ctx
    now = ctx.clock.now()
    async with ctx.db.transaction() as db:
        if connection is not None and not await db.run_sync(
                lambda s: s.execute(sa.select(ConnectionRow.id).where(ConnectionRow.name == connection)).first()):
            raise LookupError(f"no connection named '{connection}'; `viltbridge connection list` shows them")
        asked = await db.run_sync(_ask, connection, since, now)
    results = []
    for number, (job_id, name, external_id) in enumerate(asked, start=1):
        state = await runner.run(job_id)
        async with ctx.db.reader() as db:
            job = await db.run_sync(ledger.get, job_id)
        note = (job.last_error or "") if job else ""
        results.append(Synced(name, external_id, state or "busy (a worker has it)", note))
        progress(number, len(asked))
    return results
