"""Nightly reconciliation: work the ledger should hold but does not (a job lost before this version, a row edited
by hand) is asked for again. Asking is idempotent, so reconciling twice changes nothing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession

from viltbridge.core import jobs
from viltbridge.core.models import AttendanceState, SessionStatus
from viltbridge.store import job_ledger as ledger
from viltbridge.store.tables import JobRow, SessionRow

LOOK_BACK = timedelta(days=7)  # ended parts whose attendance may still become final
LOOK_AHEAD = timedelta(days=30)  # upcoming parts whose provider meeting is checked each night


def _live_keys(db: OrmSession, keys: list[str]) -> set[str]:
    """Which of `keys` name a job still to run (queued or running), or one an admin cancelled (not to be asked for
    again behind their back): a query per 500 keys, not one per key (a worker's first upkeep reconciles at once,
    holding the write lock, and 5,000 parts took seconds one by one)."""
    live: set[str] = set()
    for start in range(0, len(keys), 500):
        live.update(db.execute(sa.select(JobRow.dedupe_key).where(
            JobRow.dedupe_key.in_(keys[start:start + 500]),
            JobRow.state.in_((ledger.QUEUED, ledger.RUNNING, ledger.CANCELLED)))).scalars())
    return live


def _ask_where_missing(db: OrmSession, kind: str, sessions: list[Any], now: datetime) -> int:
    live = _live_keys(db, [jobs.dedupe_key(kind, session_id) for session_id, _ in sessions])
    asked = 0
    for session_id, connection_id in sessions:
        if jobs.dedupe_key(kind, session_id) not in live:
            ledger.enqueue(db, jobs.session_job(kind, session_id, connection_id, now), now)
            asked += 1
    return asked


def owed_work(db: OrmSession, now: datetime) -> int:
    """Ask again for meeting work still owed and for attendance not yet final, and have every upcoming meeting
    checked against its provider (one small job each, so no transaction waits on many provider calls); returns
    how many jobs were asked."""
    owed = db.execute(sa.select(SessionRow.id, SessionRow.connection_id).where(
        SessionRow.meeting_pending.is_not(None))).all()
    unfinished = db.execute(sa.select(SessionRow.id, SessionRow.connection_id).where(
        SessionRow.status == SessionStatus.SCHEDULED.value,
        SessionRow.attendance_state != AttendanceState.FINAL.value,
        SessionRow.ends_at < now, SessionRow.ends_at > now - LOOK_BACK)).all()
    upcoming = db.execute(sa.select(SessionRow.id, SessionRow.connection_id).where(
        SessionRow.status == SessionStatus.SCHEDULED.value, SessionRow.meeting_id.is_not(None),
        SessionRow.meeting_cancelled.is_(False), SessionRow.meeting_pending.is_(None),
        SessionRow.starts_at > now, SessionRow.starts_at < now + LOOK_AHEAD)).all()
    return (_ask_where_missing(db, jobs.MEETING_SYNC, list(owed), now)
            + _ask_where_missing(db, jobs.ATTENDANCE_COLLECT, list(unfinished), now)
            + _ask_where_missing(db, jobs.MEETING_CHECK, list(upcoming), now))
