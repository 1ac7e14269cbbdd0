"""Runs ledger jobs: claim with a lease, run the handler and record its outcome in one transaction, retry or bury
on failure; and the periodic upkeep (reap lost workers, dispatch due jobs, nightly reconciliation), once per slot
however many workers there are."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from viltbridge import metrics
from viltbridge.app.context import AppContext
from viltbridge.core.errors import DomainError, ProviderFailed
from viltbridge.jobs import periodic
from viltbridge.jobs.handlers import HANDLERS, Handler
from viltbridge.store import job_ledger as ledger
from viltbridge.store import reconcile
from viltbridge.store.repository import AsyncSqlStore

log = logging.getLogger("viltbridge.jobs")

Kick = Callable[[Sequence[int], datetime | None], None]  # hand job ids to the queue (at a time, or now)
UPKEEP_EVERY = timedelta(minutes=1)
RECONCILE_AT_HOUR = 2  # UTC: nightly reconciliation slot
KEEP_SLOTS = timedelta(days=2)


class LeaseLost(Exception):
    """The job's lease ran out and it went back to the queue: this run's work must not commit."""


def no_queue(job_ids: Sequence[int], eta: datetime | None) -> None:
    """Without a queue (tests, the CLI) jobs wait for the upkeep's dispatch or an explicit run."""


class JobRunner:
    def __init__(self, ctx: AppContext, owner: str, *, lease: timedelta = timedelta(minutes=5),
                 kick: Kick = no_queue, handlers: dict[str, Handler] | None = None) -> None:
        self.ctx = ctx
        self.owner = owner
        self.lease = lease  # longer than any handler's provider budget, so a live worker never loses its job
        self.kick = kick
        self.handlers = handlers if handlers is not None else HANDLERS

    async def run(self, job_id: int) -> str | None:
        """Run one job if it is there for the taking; returns its new state (None: another worker has it, or
        it is not due)."""
        ctx = self.ctx
        async with ctx.db.transaction() as db:
            job = await db.run_sync(ledger.claim, job_id, self.owner, ctx.clock.now(), self.lease)
        if job is None:
            return None
        started = time.perf_counter()
        state = await self._run(job)
        metrics.job_seconds.labels(job.kind).observe(time.perf_counter() - started)
        metrics.jobs_finished.labels(job.kind, state or "lost").inc()
        return state

    async def _run(self, job: ledger.Job) -> str | None:
        ctx = self.ctx
        handler = self.handlers.get(job.kind)
        try:
            if handler is None:
                raise DomainError(f"no handler for jobs of kind '{job.kind}' in this version of viltbridge")
            write = await handler(ctx, job)
            async with ctx.db.transaction() as db:
                store = AsyncSqlStore(db, ctx.keyring)
                outcome = await write(store)
                now = ctx.clock.now()
                if outcome.dead:
                    state = await db.run_sync(ledger.bury, job.id, self.owner, now, outcome.note)
                elif outcome.run_again_at is not None:
                    state = await db.run_sync(ledger.postpone, job.id, self.owner, now, outcome.run_again_at,
                                              outcome.note)
                else:
                    state = await db.run_sync(ledger.finish, job.id, self.owner, now)
                if state is None:
                    raise LeaseLost
            log.info("job %s %s #%d: %s", job.kind, state, job.id, outcome.note)
            self.kick(store.enqueued, None)
            if state == ledger.QUEUED:
                self.kick([job.id], outcome.run_again_at)
            return state
        except LeaseLost:
            log.warning("job %s #%d ran past its lease and was taken back; this run's work was discarded",
                        job.kind, job.id)
            return None
        except ProviderFailed as err:
            if not err.sent:  # held back by our own limiter or breaker: not an attempt, just not yet
                return await self._hold_back(job, err.message, timedelta(seconds=err.retry_after_seconds or 30))
            if not err.transient:
                return await self._settle(job, err.message, for_good=True)
            wait = timedelta(seconds=err.retry_after_seconds) if err.retry_after_seconds else None
            return await self._settle(job, err.message, retry_after=wait)
        except DomainError as err:
            return await self._settle(job, err.message, for_good=True)
        except Exception as exc:  # a bug or an outage of our own: retried with backoff, dead in the end
            log.exception("job %s #%d failed", job.kind, job.id)
            return await self._settle(job, f"{exc.__class__.__name__}: {exc}")

    async def _settle(self, job: ledger.Job, error: str, *, for_good: bool = False,
                      retry_after: timedelta | None = None) -> str | None:
        """Record a failed run: dead at once when retrying cannot help, else another attempt later."""
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as db:
            if for_good:
                state = await db.run_sync(ledger.bury, job.id, self.owner, now, error)
            else:
                state = await db.run_sync(ledger.fail, job.id, self.owner, now, error, retry_after)
        if state == ledger.QUEUED:
            async with self.ctx.db.reader() as db:
                again = await db.run_sync(ledger.get, job.id)
            self.kick([job.id], again.run_after if again else None)
        log.warning("job %s #%d %s: %s", job.kind, job.id, state or "lost", error)
        return state

    async def _hold_back(self, job: ledger.Job, reason: str, wait: timedelta) -> str | None:
        run_after = self.ctx.clock.now() + wait
        async with self.ctx.db.transaction() as db:
            state = await db.run_sync(ledger.postpone, job.id, self.owner, self.ctx.clock.now(), run_after, reason)
        if state == ledger.QUEUED:
            self.kick([job.id], run_after)
        log.info("job %s #%d held back until %s: %s", job.kind, job.id, run_after.isoformat(timespec="seconds"),
                 reason)
        return state

    async def upkeep(self, *, every_slot: bool = True) -> dict[str, int] | None:
        """Once per minute slot across all workers: reap lost jobs, hand due ones to the queue, finalise launch-only
        attendance; once a night also reconcile. None when another worker has this slot. A worker that starts runs
        it at once whatever the slot (`every_slot=False`): each step is idempotent, and what fell due while no
        worker ran should not wait for the next minute."""
        ctx = self.ctx
        now = ctx.clock.now()
        slot = now.replace(second=0, microsecond=0)
        async with ctx.db.transaction() as db:
            if every_slot and not await db.run_sync(ledger.take_slot, "upkeep", slot, self.owner, now):
                return None
            reaped = await db.run_sync(ledger.reap, now)
            finalized = await db.run_sync(periodic.finalize_attendance, ctx, now)
            reconciled = 0
            nightly = now.replace(hour=RECONCILE_AT_HOUR, minute=0, second=0, microsecond=0)
            if now >= nightly and await db.run_sync(ledger.take_slot, "reconcile", nightly, self.owner, now):
                reconciled = await db.run_sync(reconcile.owed_work, now)
            await db.run_sync(ledger.forget_slots_before, now - KEEP_SLOTS)
        async with ctx.db.reader() as db:
            due = await db.run_sync(ledger.due, now)
        self.kick(due, None)
        if reaped:
            log.warning("upkeep: %d job(s) of vanished workers back in the queue: %s", len(reaped), reaped)
        return {"reaped": len(reaped), "dispatched": len(due), "finalized": finalized, "reconciled": reconciled}

    async def run_due(self) -> dict[str, int]:
        """Run every due job here and now, one after another (the CLI and tests; workers use the queue)."""
        counts: dict[str, int] = {}
        async with self.ctx.db.reader() as db:
            due = await db.run_sync(ledger.due, self.ctx.clock.now())
        for job_id in due:
            state = await self.run(job_id) or "skipped"
            counts[state] = counts.get(state, 0) + 1
        return counts
