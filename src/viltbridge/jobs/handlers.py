"""What each kind of job does. A handler runs inside one write transaction with the job's outcome, so the work and
the ledger's record of it commit together; it must be idempotent (a job may run again after a lost worker)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from viltbridge.app import attendance, registrations, sessions
from viltbridge.app.context import AppContext
from viltbridge.core import jobs
from viltbridge.core.errors import DomainError, NotReady, ProviderFailed
from viltbridge.core.models import AttendanceState, SessionStatus
from viltbridge.store.job_ledger import Job
from viltbridge.store.repository import AsyncSqlStore

# Attendance is collected again until final; past this long after the end the provider is not going to finish.
ATTENDANCE_GIVE_UP_AFTER = timedelta(days=7)
ATTENDANCE_RECHECK = timedelta(minutes=15)


@dataclass(frozen=True)
class Outcome:
    """How a handler's run ended: done (with a note), or to run again at `run_again_at` (not a failure)."""

    note: str
    run_again_at: datetime | None = None
    dead: bool = False  # failed for good (the handler's own writes, e.g. the reason on the session, still commit)


Handler = Callable[[AppContext, AsyncSqlStore, Job], Awaitable[Outcome]]


@dataclass(frozen=True)
class Staged:
    """A handler in two steps, for work that makes many provider calls: `prepare` reads through its own snapshot
    and calls the provider before the job's transaction opens, holding no database lock (SQLite's write lock would
    stop every launch being recorded meanwhile); `finish` writes what it made with the job's outcome. A run whose
    `finish` does not commit (a lost lease) leaves its provider work for the next run to find."""

    prepare: Callable[[AppContext, Job], Awaitable[Any]]
    finish: Callable[[AppContext, AsyncSqlStore, Job, Any], Awaitable[Outcome]]


async def sync_meeting(ctx: AppContext, store: AsyncSqlStore, job: Job) -> Outcome:
    """Create, update or cancel the provider meeting a save left owed (the provider was down then)."""
    session = await store.get_session(int(job.payload["session_id"]))
    if session is None:
        return Outcome("session gone; nothing to do")
    connection = await store.get_connection(session.connection_id)
    if connection is None:
        return Outcome("connection gone; nothing to do")
    provider = ctx.providers.for_connection(connection)
    try:
        return Outcome(await sessions.sync_meeting(store, provider, session.id or 0))
    except DomainError as err:
        if isinstance(err, ProviderFailed) and err.transient:
            raise  # retried with backoff
        return Outcome(err.message, dead=True)


async def collect_attendance(ctx: AppContext, store: AsyncSqlStore, job: Job) -> Outcome:
    """After a part ends: ask the provider for attendance and keep asking until it is final, so the answer is
    ready (and final) when the LMS asks, whether or not it asks at all."""
    now = ctx.clock.now()
    session = await store.get_session(int(job.payload["session_id"]))
    if session is None or session.status is SessionStatus.CANCELLED:
        return Outcome("session gone or cancelled; nothing to collect")
    # `recompute`: an admin changed what the ledger is judged by (an alias, a resolved row): final parts too,
    # from the ledger alone (no provider call once final).
    if session.attendance_state is AttendanceState.FINAL and not job.payload.get("recompute"):
        return Outcome("attendance already final")
    connection = await store.get_connection(session.connection_id)
    if connection is None:
        return Outcome("connection gone; nothing to collect")
    if now < session.ends_at:
        return Outcome("the part has not ended yet", run_again_at=session.ends_at + sessions.ATTENDANCE_FIRST_LOOK)
    if now > session.ends_at + ATTENDANCE_GIVE_UP_AFTER:
        return Outcome(f"gave up: attendance still not final {ATTENDANCE_GIVE_UP_AFTER.days} days after the end")
    provider = ctx.providers.for_connection(connection)
    try:
        result = await attendance.attendance(store, provider, connection, session.external_id, ctx.clock)
    except NotReady as wait:
        return Outcome(wait.message, run_again_at=now + timedelta(seconds=wait.retry_after_seconds or 900))
    await attendance.save_attendance(store, result, now)
    summary = f"{result.state.value}: {len(result.emails)} attended of {len(result.decisions)} matched"
    if result.state is AttendanceState.FINAL:
        return Outcome(summary)
    return Outcome(summary, run_again_at=now + ATTENDANCE_RECHECK)


async def check_meeting(ctx: AppContext, store: AsyncSqlStore, job: Job) -> Outcome:
    """Nightly: is the provider's meeting still there, and still what the LMS scheduled?"""
    session = await store.get_session(int(job.payload["session_id"]))
    connection = await store.get_connection(session.connection_id) if session else None
    if session is None or connection is None or not connection.active:
        return Outcome("session or connection gone or switched off; nothing to check")
    provider = ctx.providers.for_connection(connection)
    return Outcome(await sessions.check_meeting(store, provider, session.id or 0, ctx.clock.now()))


async def register_learners(ctx: AppContext, job: Job) -> registrations.Registered:
    """Learners known from the session's other parts registered with the provider ahead of their click."""
    return await registrations.prepare(ctx, int(job.payload["session_id"]))


async def keep_registrations(ctx: AppContext, store: AsyncSqlStore, job: Job,
                             registered: registrations.Registered) -> Outcome:
    await registrations.finish(store, registered)
    again = registered.run_again_in
    return Outcome(registered.note, run_again_at=None if again is None else ctx.clock.now() + again)


HANDLERS: dict[str, Handler | Staged] = {
    jobs.MEETING_CHECK: check_meeting,
    jobs.MEETING_SYNC: sync_meeting,
    jobs.ATTENDANCE_COLLECT: collect_attendance,
    jobs.LEARNERS_REGISTER: Staged(register_learners, keep_registrations),
}
