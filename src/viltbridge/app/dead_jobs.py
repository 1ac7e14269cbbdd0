"""Background jobs that ran out of attempts ("dead"): listed for an operator, and retried on request."""

from __future__ import annotations

from typing import TYPE_CHECKING

from viltbridge.app.uow import run, unit_of_work
from viltbridge.store import job_ledger
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
