"""Background jobs an operator looks after: dead ones ("out of attempts") listed and retried, and a connection's
owed work (queued, dead or cancelled jobs) run now or cancelled from its page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session as OrmSession

from viltbridge.app.uow import run, unit_of_work
from viltbridge.core import jobs
from viltbridge.core.errors import InvalidInput, NotFound
from viltbridge.store import job_ledger, repository
from viltbridge.store.job_ledger import Job

if TYPE_CHECKING:
    from viltbridge.app.context import AppContext


async def listing(ctx: AppContext) -> list[Job]:
    return await run(ctx, job_ledger.listing, states=(job_ledger.DEAD,))


async def retry(ctx: AppContext, job_id: int, *, actor: str) -> bool:
    """Run a dead (or done) job again with fresh attempts; False when it is queued or running already, or unknown."""
    async with unit_of_work(ctx) as work:
        again = await work.db.run_sync(job_ledger.retry, job_id, ctx.clock.now())
        if again:
            await work.audit(actor, "job.retry", f"job:{job_id}")
            work.hand_over(job_id)
    return again


# What cancelling a job of each kind means for the LMS and for attendance: said before the admin confirms.
CANCEL_MEANS = {
    jobs.MEETING_SYNC: "The meeting is not created, changed or cancelled at the provider as the LMS last asked. The "
                       "part keeps what the LMS saved, and learners launch into the meeting as the provider has it "
                       "(none if it was never created). The next change the LMS sends to this part asks again.",
    jobs.MEETING_CHECK: "This part's meeting is not compared with the provider, so a change made at the provider "
                        "directly stays unnoticed. Nothing changes in the LMS.",
    jobs.ATTENDANCE_COLLECT: "Attendance of this part is no longer collected from the provider: what is recorded now "
                             "(launches and events already received) stays, and the LMS reads that when it asks; it "
                             "may stay provisional. viltbridge does not collect it again by itself.",
    jobs.LEARNERS_REGISTER: "Learners are not registered with the provider ahead of their click: each one is "
                            "registered when they launch instead.",
}


def cancel_means(kind: str) -> str:
    return CANCEL_MEANS.get(kind, "This work is not done. viltbridge does not ask for it again by itself.")


def _connection_job(db: OrmSession, connection: str, job_id: int) -> Job:
    """The job, if it belongs to `connection`: a job id from another connection's page is refused."""
    row = repository.connection_row_by_name(db, connection)
    job = job_ledger.get(db, job_id)
    if row is None or job is None or job.connection_id != row.id:
        raise NotFound(f"Connection '{connection}' has no job #{job_id}. Reload its page to see its work as it is now.")
    return job


async def run_now(ctx: AppContext, connection: str, job_id: int, *, actor: str) -> None:
    """A queued job run now instead of after its backoff; a dead or cancelled one queued again with fresh
    attempts. InvalidInput when it is running already."""
    async with unit_of_work(ctx) as work:
        def retry_it(db: OrmSession) -> tuple[Job, bool]:
            job = _connection_job(db, connection, job_id)
            now = ctx.clock.now()
            if job.state == job_ledger.QUEUED:
                return job, job_ledger.run_now(db, job_id, now)
            return job, job_ledger.retry(db, job_id, now)

        job, again = await work.db.run_sync(retry_it)
        if not again:
            raise InvalidInput(f"Job #{job_id} ({job.kind}) is {job.state} now, so it cannot be retried; reload the "
                               "page to see where it is.")
        await work.audit(actor, "job.retry", f"job:{job_id}", before={"state": job.state, "attempts": job.attempts},
                         after={"state": job_ledger.QUEUED, "connection": connection})
        work.hand_over(job_id)


async def cancel(ctx: AppContext, connection: str, job_id: int, *, actor: str) -> None:
    """A queued or dead job cancelled for good (the runner never runs it); a cancelled meeting.sync also stops its
    part being reported as owing meeting work. InvalidInput when it is running or finished."""
    async with unit_of_work(ctx) as work:
        def cancel_it(db: OrmSession) -> tuple[Job, bool]:
            job = _connection_job(db, connection, job_id)
            now = ctx.clock.now()
            cancelled = job_ledger.cancel(db, job_id, now)
            if cancelled and job.kind == jobs.MEETING_SYNC and job.session_id is not None:
                job_ledger.forget_owed_meeting(db, job.session_id, now)
            return job, cancelled

        job, cancelled = await work.db.run_sync(cancel_it)
        if not cancelled:
            raise InvalidInput(f"Job #{job_id} ({job.kind}) is {job.state} now, so it cannot be cancelled"
                               + (": a worker is running it; wait for it to finish." if job.state == "running"
                                  else "."))
        await work.audit(actor, "job.cancel", f"job:{job_id}",
                         before={"state": job.state, "attempts": job.attempts, "last_error": job.last_error},
                         after={"state": job_ledger.CANCELLED, "connection": connection})
