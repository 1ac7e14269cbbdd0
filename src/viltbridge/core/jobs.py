"""The background jobs: their kinds, and the one place a job is asked for (kind, dedupe key, payload).

Every job concerns one session part, and its dedupe key is `<kind>:<session id>`, so asking again for work already
queued updates that job instead of adding another (see `JobRequest`). The ledger, the use cases, the console, the
CLI and the nightly reconciliation all ask through these functions; `jobs/handlers.py` maps each kind to its
handler.
"""

from __future__ import annotations

from datetime import datetime

from viltbridge.core.models import JobRequest

MEETING_SYNC = "meeting.sync"  # provider work a save left owed (`meeting_pending`)
MEETING_CHECK = "meeting.check"  # an upcoming meeting compared with its provider (the nightly check)
ATTENDANCE_COLLECT = "attendance.collect"  # attendance collected, or computed again from the ledger
# Learners known from the part's other parts (their launches) registered ahead of their click, where the provider
# registers people (`core.provider.RegistersAhead`).
LEARNERS_REGISTER = "learners.register"

KINDS = (MEETING_SYNC, MEETING_CHECK, ATTENDANCE_COLLECT, LEARNERS_REGISTER)


def dedupe_key(kind: str, session_id: int) -> str:
    return f"{kind}:{session_id}"


def session_job(kind: str, session_id: int, connection_id: int | None, run_after: datetime) -> JobRequest:
    """A job of `kind` for one session part: the form every kind but a recompute takes."""
    return JobRequest(kind, dedupe_key(kind, session_id), {"session_id": session_id}, run_after,
                      connection_id=connection_id, session_id=session_id)


def recompute_attendance(session_id: int, connection_id: int, run_after: datetime) -> JobRequest:
    """Attendance computed again, final parts too (from the ledger alone once final): the console's button."""
    return JobRequest(ATTENDANCE_COLLECT, dedupe_key(ATTENDANCE_COLLECT, session_id),
                      {"session_id": session_id, "recompute": True}, run_after,
                      connection_id=connection_id, session_id=session_id)
