"""The job ledger: sync functions over a SQLAlchemy `Session`, like the repositories.

A job is written in the same transaction as the data that needs it, under a unique dedupe key. Workers claim it
with a lease (a claim is a conditional UPDATE, so two workers racing for one job cannot both win), renew the lease
while they work, and finish it, fail it (retried with backoff or the provider's Retry-After, dead after
`max_attempts`) or postpone it. A worker that dies leaves a lease that runs out; the reaper puts the job back.
Work is therefore at least once, and handlers are idempotent. An admin may cancel a queued or dead job: it stays in
the ledger, cancelled, and nothing runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as OrmSession

from viltbridge.core.models import JobRequest
from viltbridge.store.db import Readable
from viltbridge.store.tables import JobRow, PeriodicRunRow, SessionRow

QUEUED, RUNNING, DONE, DEAD = "queued", "running", "done", "dead"
# Given up on by an admin: never claimed (only queued jobs are), nor asked again by the nightly reconciliation; a
# new request for the same work (the LMS changes the part) queues it afresh.
CANCELLED = "cancelled"
STATES = (QUEUED, RUNNING, DONE, DEAD, CANCELLED)
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)

_JOBS = cast(sa.Table, JobRow.__table__)
_PERIODIC_RUNS = cast(sa.Table, PeriodicRunRow.__table__)


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    dedupe_key: str
    payload: dict[str, Any]
    state: str
    attempts: int
    max_attempts: int
    run_after: datetime
    lease_owner: str | None
    lease_until: datetime | None
    last_error: str | None
    connection_id: int | None
    session_id: int | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


def _job(row: Any) -> Job:
    return Job(id=row.id, kind=row.kind, dedupe_key=row.dedupe_key, payload=dict(row.payload), state=row.state,
               attempts=row.attempts, max_attempts=row.max_attempts, run_after=row.run_after,
               lease_owner=row.lease_owner, lease_until=row.lease_until, last_error=row.last_error,
               connection_id=row.connection_id, session_id=row.session_id, created_at=row.created_at,
               updated_at=row.updated_at, finished_at=row.finished_at)


def _insert(db: OrmSession, table: sa.Table) -> Any:
    dialect = db.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def retry_delay(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, ... doubling up to an hour: a ten-minute outage costs about six attempts."""
    doubled: timedelta = FIRST_RETRY * 2 ** min(max(0, attempts - 1), 16)  # 2**16 x 30 s is past the cap anyway
    return min(doubled, LONGEST_RETRY)


def enqueue(db: OrmSession, request: JobRequest, now: datetime) -> int:
    """Ask for a job; returns its id. Asking again for the same dedupe key never makes a second job: a queued one
    runs at the earlier time with the newer payload, a running one runs once more after it finishes, and a done
    or dead one is queued afresh."""
    inserted = db.execute(
        _insert(db, _JOBS).values(
            kind=request.kind, dedupe_key=request.dedupe_key, payload=request.payload, state=QUEUED, attempts=0,
            max_attempts=request.max_attempts, run_after=request.run_after, run_again=False,
            connection_id=request.connection_id, session_id=request.session_id, created_at=now, updated_at=now,
        ).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(_JOBS.c.id)
    ).scalar_one_or_none()
    if inserted is not None:
        return int(inserted)
    row = db.execute(sa.select(_JOBS).where(_JOBS.c.dedupe_key == request.dedupe_key).with_for_update()).one()
    changes: dict[str, Any] = {"payload": request.payload, "updated_at": now}
    if row.state == QUEUED:  # done, dead or cancelled: queued afresh below
        changes["run_after"] = min(row.run_after, request.run_after)
    elif row.state == RUNNING:
        changes["run_again"] = True
        changes["run_after"] = request.run_after
    else:
        changes.update(state=QUEUED, attempts=0, run_after=request.run_after, last_error=None, finished_at=None,
                       max_attempts=request.max_attempts)
    db.execute(sa.update(_JOBS).where(_JOBS.c.id == row.id).values(**changes))
    return int(row.id)


def claim(db: OrmSession, job_id: int, owner: str, now: datetime, lease: timedelta) -> Job | None:
    """Take a queued, due job for `owner` until `now + lease`; None when it is not there for the taking (another
    worker has it, it is finished, or not due yet)."""
    taken = db.execute(
        sa.update(_JOBS)
        .where(_JOBS.c.id == job_id, _JOBS.c.state == QUEUED, _JOBS.c.run_after <= now)
        .values(state=RUNNING, lease_owner=owner, lease_until=now + lease, run_again=False, updated_at=now)
        .returning(*_JOBS.c)
    ).one_or_none()
    return _job(taken) if taken is not None else None


def renew(db: OrmSession, job_id: int, owner: str, now: datetime, lease: timedelta) -> bool:
    """Extend a lease still held; False when it was lost (reaped and maybe taken by another worker)."""
    result = db.execute(
        sa.update(_JOBS).where(_JOBS.c.id == job_id, _JOBS.c.state == RUNNING, _JOBS.c.lease_owner == owner)
        .values(lease_until=now + lease, updated_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _held(db: OrmSession, job_id: int, owner: str) -> Any:
    return db.execute(
        sa.select(_JOBS).where(_JOBS.c.id == job_id, _JOBS.c.state == RUNNING, _JOBS.c.lease_owner == owner)
        .with_for_update()
    ).one_or_none()


def finish(db: OrmSession, job_id: int, owner: str, now: datetime) -> str | None:
    """Done, or queued again at once when it was asked for while running. None when the lease was lost."""
    row = _held(db, job_id, owner)
    if row is None:
        return None
    if row.run_again:
        values: dict[str, Any] = {"state": QUEUED, "attempts": 0, "run_after": max(now, row.run_after)}
    else:
        values = {"state": DONE, "finished_at": now, "last_error": None}
    db.execute(sa.update(_JOBS).where(_JOBS.c.id == job_id).values(
        lease_owner=None, lease_until=None, run_again=False, updated_at=now, **values))
    return str(values["state"])


def fail(db: OrmSession, job_id: int, owner: str, now: datetime, error: str,
         retry_after: timedelta | None = None) -> str | None:
    """One failed attempt: queued again after the backoff (or the provider's Retry-After, if longer), or dead
    with the reason once `max_attempts` are spent. None when the lease was lost."""
    row = _held(db, job_id, owner)
    if row is None:
        return None
    attempts = row.attempts + 1
    dead = attempts >= row.max_attempts
    wait = max(retry_delay(attempts), retry_after or timedelta(0))
    db.execute(sa.update(_JOBS).where(_JOBS.c.id == job_id).values(
        state=DEAD if dead else QUEUED, attempts=attempts, last_error=error[:4000],
        run_after=row.run_after if dead else now + wait, finished_at=now if dead else None,
        lease_owner=None, lease_until=None, run_again=False, updated_at=now))
    return DEAD if dead else QUEUED


def bury(db: OrmSession, job_id: int, owner: str, now: datetime, error: str) -> str | None:
    """Dead at once: the failure will not go away by retrying (the provider refused the request as it is)."""
    row = _held(db, job_id, owner)
    if row is None:
        return None
    db.execute(sa.update(_JOBS).where(_JOBS.c.id == job_id).values(
        state=DEAD, attempts=row.attempts + 1, last_error=error[:4000], finished_at=now, lease_owner=None,
        lease_until=None, run_again=False, updated_at=now))
    return DEAD


def postpone(db: OrmSession, job_id: int, owner: str, now: datetime, run_after: datetime,
             note: str | None = None) -> str | None:
    """Not a failure, just not yet (e.g. attendance not final): run again at `run_after`, attempts unchanged."""
    row = _held(db, job_id, owner)
    if row is None:
        return None
    db.execute(sa.update(_JOBS).where(_JOBS.c.id == job_id).values(
        state=QUEUED, run_after=max(run_after, now), last_error=note, lease_owner=None, lease_until=None,
        run_again=False, updated_at=now))
    return QUEUED


def reap(db: OrmSession, now: datetime) -> list[int]:
    """Jobs whose worker vanished (lease run out) go back to the queue; that counts as a failed attempt, so a job
    that kills its worker every time ends up dead instead of looping."""
    lost = db.execute(
        sa.select(_JOBS.c.id, _JOBS.c.attempts, _JOBS.c.max_attempts, _JOBS.c.lease_owner, _JOBS.c.lease_until)
        .where(_JOBS.c.state == RUNNING, _JOBS.c.lease_until < now).with_for_update()
    ).all()
    for row in lost:
        attempts = row.attempts + 1
        dead = attempts >= row.max_attempts
        db.execute(sa.update(_JOBS).where(_JOBS.c.id == row.id).values(
            state=DEAD if dead else QUEUED, attempts=attempts, run_after=now, lease_owner=None, lease_until=None,
            finished_at=now if dead else None, updated_at=now,
            last_error=f"worker {row.lease_owner} stopped answering (lease ran out at {row.lease_until:%H:%M:%S} UTC)"))
    return [row.id for row in lost]


def due(db: Readable, now: datetime, limit: int = 500) -> list[int]:
    rows = db.connection().execute(sa.select(_JOBS.c.id).where(_JOBS.c.state == QUEUED, _JOBS.c.run_after <= now)
                      .order_by(_JOBS.c.run_after, _JOBS.c.id).limit(limit)).scalars()
    return list(rows)


def get(db: Readable, job_id: int) -> Job | None:
    row = db.connection().execute(sa.select(_JOBS).where(_JOBS.c.id == job_id)).one_or_none()
    return _job(row) if row is not None else None


def listing(db: Readable, *, states: Sequence[str] = (), kind: str | None = None,
            session_id: int | None = None, limit: int = 200) -> list[Job]:
    query = sa.select(_JOBS).order_by(_JOBS.c.id.desc()).limit(limit)
    if states:
        query = query.where(_JOBS.c.state.in_(states))
    if kind:
        query = query.where(_JOBS.c.kind == kind)
    if session_id is not None:
        query = query.where(_JOBS.c.session_id == session_id)
    return [_job(row) for row in db.connection().execute(query)]


def retry(db: OrmSession, job_id: int, now: datetime) -> bool:
    """A dead, cancelled (or done) job queued again now with fresh attempts; False when it is queued or running
    already."""
    result = db.execute(sa.update(_JOBS).where(_JOBS.c.id == job_id, _JOBS.c.state.in_((DEAD, DONE, CANCELLED)))
                        .values(state=QUEUED, attempts=0, run_after=now, finished_at=None, updated_at=now))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def run_now(db: OrmSession, job_id: int, now: datetime) -> bool:
    """A queued job due now instead of after its backoff (its attempts so far still count); False when it is not
    queued."""
    result = db.execute(sa.update(_JOBS).where(_JOBS.c.id == job_id, _JOBS.c.state == QUEUED).values(
        run_after=now, updated_at=now))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def cancel(db: OrmSession, job_id: int, now: datetime) -> bool:
    """A queued or dead job given up: it is never run. False when it is running (its worker holds it) or already
    finished."""
    result = db.execute(sa.update(_JOBS).where(_JOBS.c.id == job_id, _JOBS.c.state.in_((QUEUED, DEAD))).values(
        state=CANCELLED, finished_at=now, run_again=False, updated_at=now))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def take_slot(db: OrmSession, name: str, slot: datetime, owner: str, now: datetime) -> bool:
    """True for exactly one caller per (periodic task, slot), however many workers ask."""
    taken = db.execute(
        _insert(db, _PERIODIC_RUNS).values(name=name, slot=slot, owner=owner, started_at=now)
        .on_conflict_do_nothing(index_elements=["name", "slot"]).returning(_PERIODIC_RUNS.c.name)
    ).scalar_one_or_none()
    return taken is not None


def forget_slots_before(db: OrmSession, before: datetime) -> int:
    result = db.execute(sa.delete(_PERIODIC_RUNS).where(_PERIODIC_RUNS.c.slot < before))
    return int(result.rowcount)  # type: ignore[attr-defined]


def forget_owed_meeting(db: OrmSession, session_id: int, now: datetime) -> None:
    """The part no longer waits for meeting work at its provider (its meeting.sync job was cancelled): it stops
    being reported as owed, and the nightly reconciliation stops asking for the work. Through the ORM row, so the
    launch path's caches hear of the change (`store.changes`)."""
    row = db.get(SessionRow, session_id)
    if row is not None and row.meeting_pending is not None:
        row.meeting_pending, row.meeting_error, row.updated_at = None, None, now
        db.flush()
