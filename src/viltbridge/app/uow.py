"""Units of work: how a use case reaches the database.

`unit_of_work` is one transaction with the store over it. The audit entries it records commit with the change, and
the jobs it asks for go to the workers only after the commit, so a worker never looks for a row that is not there
yet. `reading` is a read-only snapshot for use cases that write nothing, such as launches, options and conflicts.
`run` runs one use case written over the ORM (`app.connections`, `app.console_users`, the console's read views;
the CLI calls the same functions synchronously) in one transaction. A caller outside `app/` (the LMS routes, the
console) never opens a transaction itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy.orm import Session as OrmSession

from viltbridge.core.models import Connection
from viltbridge.observability import correlation_id
from viltbridge.store import audit, lms_reads
from viltbridge.store.db import SyncRunner
from viltbridge.store.repository import AsyncSqlStore

if TYPE_CHECKING:
    from viltbridge.app.context import AppContext

P = ParamSpec("P")
T = TypeVar("T")


class Reading:
    """A read-only snapshot: the store over it, and the runner for the few reads that are not store calls
    (credentials)."""

    def __init__(self, ctx: AppContext, db: SyncRunner) -> None:
        self.ctx = ctx
        self.db = db
        self.store = AsyncSqlStore(db, ctx.keyring)


class UnitOfWork(Reading):
    """One transaction: what is read and written through `store`, plus the audit entries recorded here, commits
    together or not at all."""

    async def audit(self, actor: str, action: str, target: str, *, before: dict[str, Any] | None = None,
                    after: dict[str, Any] | None = None) -> None:
        now = self.ctx.clock.now()
        await self.db.run_sync(lambda s: audit.record(s, now, actor, action, target, before=before, after=after))

    async def audit_lms_call(self, connection: Connection, action: str, external_id: str,
                             details: dict[str, Any]) -> None:
        """The LMS's changes and roster answers on the part's timeline, with the call's correlation id. Launch
        requests are not recorded here: they are many and cheap, and every click is in the launch ledger."""
        await self.audit(f"lms:{connection.name}", action, f"session:{connection.name}/{external_id}",
                         after={"correlationId": correlation_id.get(), **details})

    async def record_lms_read(self, connection: Connection, action: str, session_id: int,
                              details: dict[str, Any]) -> None:
        """An LMS read (GetAttendees) on the part's timeline, with the call's correlation id, and not in the audit
        log: an LMS polls for attendance every few minutes, and the log is for changes."""
        now, who = self.ctx.clock.now(), f"lms:{connection.name}"
        kept = {"correlationId": correlation_id.get(), **details}
        await self.db.run_sync(lambda s: lms_reads.record(s, session_id, now, who, action, kept))

    def hand_over(self, job_id: int) -> None:
        """The workers get this job (made runnable again in this unit of work) once it commits, as they get the
        jobs asked for through `store.enqueue_job`."""
        self.store.enqueued.append(job_id)


@asynccontextmanager
async def unit_of_work(ctx: AppContext) -> AsyncIterator[UnitOfWork]:
    async with ctx.db.transaction() as db:
        work = UnitOfWork(ctx, db)
        yield work
    await ctx.kick(work.store.enqueued)  # only once committed


class reading:  # lower case: used as `async with reading(ctx) as read`, like the function it replaced
    """A read-only snapshot for one request (a class, not an `asynccontextmanager`: the launch endpoint enters one
    per request)."""

    __slots__ = ("_ctx", "_read_only")

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx
        self._read_only = ctx.db.reader()

    async def __aenter__(self) -> Reading:
        return Reading(self._ctx, await self._read_only.__aenter__())

    async def __aexit__(self, *exc: object) -> None:
        await self._read_only.__aexit__(*exc)


async def run(ctx: AppContext, use_case: Callable[Concatenate[OrmSession, P], T], *args: P.args,
              **kwargs: P.kwargs) -> T:
    """`use_case(session, *args, **kwargs)` in one transaction, in the database driver's thread: what it changes
    commits together or not at all. For use cases over the ORM, which is how the console's lighter traffic reads
    and writes."""
    async with ctx.db.transaction() as db:
        return await db.run_sync(lambda session: use_case(session, *args, **kwargs))
