"""What `/metrics` reads from the database when it is scraped: the job ledger's depth and dead jobs, and parts by
attendance state. Counts grouped in SQL, bounded by the number of job kinds and states."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import sqlalchemy as sa

from viltbridge.core.models import AttendanceState, SessionStatus
from viltbridge.store.db import Readable
from viltbridge.store.job_ledger import DEAD, QUEUED, RUNNING
from viltbridge.store.tables import JobRow, SessionRow

_JOBS = cast(sa.Table, JobRow.__table__)
_SESSIONS = cast(sa.Table, SessionRow.__table__)

# How long after a class its attendance may stay short of final before someone should look.
ATTENDANCE_OVERDUE_AFTER = timedelta(hours=24)


@dataclass(frozen=True)
class DatabaseGauges:
    jobs: dict[tuple[str, str], int]  # (kind, state) -> jobs, for queued, running and dead
    jobs_due: dict[str, int]  # kind -> queued jobs whose time has come (waiting for a worker)
    parts: dict[str, int]  # attendance state -> scheduled (not cancelled) parts
    parts_not_final_overdue: int  # ended over ATTENDANCE_OVERDUE_AFTER ago, attendance not final


def database_gauges(db: Readable, now: datetime) -> DatabaseGauges:
    conn = db.connection()
    jobs = {(kind, state): count for kind, state, count in conn.execute(
        sa.select(_JOBS.c.kind, _JOBS.c.state, sa.func.count())
        .where(_JOBS.c.state.in_((QUEUED, RUNNING, DEAD))).group_by(_JOBS.c.kind, _JOBS.c.state))}
    due = {kind: count for kind, count in conn.execute(
        sa.select(_JOBS.c.kind, sa.func.count())
        .where(_JOBS.c.state == QUEUED, _JOBS.c.run_after <= now).group_by(_JOBS.c.kind))}
    scheduled = _SESSIONS.c.status == SessionStatus.SCHEDULED.value
    parts = {state: count for state, count in conn.execute(
        sa.select(_SESSIONS.c.attendance_state, sa.func.count()).where(scheduled)
        .group_by(_SESSIONS.c.attendance_state))}
    overdue = conn.execute(
        sa.select(sa.func.count()).select_from(_SESSIONS)
        .where(scheduled, _SESSIONS.c.ends_at < now - ATTENDANCE_OVERDUE_AFTER,
               _SESSIONS.c.attendance_state != AttendanceState.FINAL.value)).scalar_one()
    return DatabaseGauges(jobs=jobs, jobs_due=due, parts=parts, parts_not_final_overdue=int(overdue))
