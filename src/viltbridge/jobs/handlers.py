"""What each kind of job does. A handler's writes commit in one write transaction with the job's outcome, so the work
and the ledger's record of it commit together; it must be idempotent (a job may run again after a lost worker).

A handler may read and ask a provider first, outside that transaction, and hand the runner the write to make: on
SQLite a write transaction holds the database's one write lock, so a provider call inside it would make every other
job (and every save) wait for the provider's answer and its rate limits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from viltbridge.app import attendance, registrations, sessions
from viltbridge.app.context import AppContext
from viltbridge.app.uow import reading
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


# The write a handler makes, run by the runner in the transaction that records the job's outcome.
Write = Callable[[AsyncSqlStore], Awaitable[Outcome]]
# A handler: whatever it reads or asks of providers before the write transaction, then the write to make.
Handler = Callable[[AppContext, Job], Awaitable[Write]]
# A handler that does all its work inside the write transaction (see `in_the_transaction`).
TransactionalWork = Callable[[AppContext, AsyncSqlStore, Job], Awaitable[Outcome]]


def in_the_transaction(work: TransactionalWork) -> Handler:
    """A handler doing everything, provider calls included, inside the write transaction (the meeting jobs keep a
    provider call and the write of its result in one transaction)."""
    async def handler(ctx: AppContext, job: Job) -> Write:
        async def write(store: AsyncSqlStore) -> Outcome:
            return await work(ctx, store, job)
        return write
    return handler


def only(outcome: Outcome) -> Write:
    """A write that records nothing but the job's outcome."""
    async def write(_store: AsyncSqlStore) -> Outcome:
        return outcome
    return write


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


async def collect_attendance(ctx: AppContext, job: Job) -> Write:
    """After a part ends: ask the provider for attendance and keep asking until it is final, so the answer is
    ready (and final) when the LMS asks, whether or not it asks at all. Read and asked outside the write
    transaction, as `attendance.report` does: only the short write of what was learned holds the write lock."""
    now = ctx.clock.now()
    async with reading(ctx) as read:
        session = await read.store.get_session(int(job.payload["session_id"]))
        if session is None or session.status is SessionStatus.CANCELLED:
            return only(Outcome("session gone or cancelled; nothing to collect"))
        # `recompute`: an admin changed what the ledger is judged by (an alias, a resolved row): final parts too,
        # from the ledger alone (no provider call once final).
        if session.attendance_state is AttendanceState.FINAL and not job.payload.get("recompute"):
            return only(Outcome("attendance already final"))
        connection = await read.store.get_connection(session.connection_id)
        if connection is None:
            return only(Outcome("connection gone; nothing to collect"))
        if now < session.ends_at:
            return only(Outcome("the part has not ended yet",
                                run_again_at=session.ends_at + sessions.ATTENDANCE_FIRST_LOOK))
        if now > session.ends_at + ATTENDANCE_GIVE_UP_AFTER:
            return only(Outcome(f"gave up: attendance still not final {ATTENDANCE_GIVE_UP_AFTER.days} days after "
                                "the end"))
        provider = ctx.providers.for_connection(connection)
        try:
            result = await attendance.attendance(read.store, provider, connection, session.external_id, ctx.clock)
        except NotReady as wait:
            return only(Outcome(wait.message, run_again_at=now + timedelta(seconds=wait.retry_after_seconds or 900)))

    async def keep(store: AsyncSqlStore) -> Outcome:
        await attendance.save_attendance(store, result, now)
        summary = f"{result.state.value}: {len(result.emails)} attended of {len(result.decisions)} matched"
        if result.state is AttendanceState.FINAL:
            return Outcome(summary)
        return Outcome(summary, run_again_at=now + ATTENDANCE_RECHECK)
    return keep


async def check_meeting(ctx: AppContext, store: AsyncSqlStore, job: Job) -> Outcome:
    """Nightly: is the provider's meeting still there, and still what the LMS scheduled?"""
    session = await store.get_session(int(job.payload["session_id"]))
    connection = await store.get_connection(session.connection_id) if session else None
    if session is None or connection is None or not connection.active:
        return Outcome("session or connection gone or switched off; nothing to check")
    provider = ctx.providers.for_connection(connection)
    return Outcome(await sessions.check_meeting(store, provider, session.id or 0, ctx.clock.now()))


async def register_learners(ctx: AppContext, job: Job) -> Write:
    """Learners known from the session's other parts registered with the provider ahead of their click: the
    provider calls run first, the links are kept in the write transaction (a run whose write does not commit, a
    lost lease, leaves its registrations for the next run to find)."""
    registered = await registrations.prepare(ctx, int(job.payload["session_id"]))

    async def keep(store: AsyncSqlStore) -> Outcome:
        await registrations.finish(store, registered)
        again = registered.run_again_in
        return Outcome(registered.note, run_again_at=None if again is None else ctx.clock.now() + again)
    return keep


HANDLERS: dict[str, Handler] = {
    jobs.MEETING_CHECK: in_the_transaction(check_meeting),
    jobs.MEETING_SYNC: in_the_transaction(sync_meeting),
    jobs.ATTENDANCE_COLLECT: collect_attendance,
    jobs.LEARNERS_REGISTER: register_learners,
}
