"""Read models for the console: the sessions list with its filters, and one session's timeline (launches, joins
and leaves, background jobs and admin changes, in time order)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession

from viltbridge.core.emails import normalize_email
from viltbridge.store.tables import (
    AttendanceResultRow,
    AttendanceSegmentRow,
    AuditRow,
    ConnectionRow,
    JobRow,
    LaunchRow,
    SessionRow,
)


@dataclass(frozen=True)
class SessionFilter:
    connection: str | None = None
    status: str | None = None  # scheduled | cancelled
    attendance: str | None = None  # pending | provisional | final ...
    starts_from: datetime | None = None
    starts_until: datetime | None = None
    instructor: str | None = None  # an email: only sessions this person teaches
    text: str | None = None  # in the title or the LMS session id


def sessions(db: OrmSession, wanted: SessionFilter, *, limit: int = 500) -> list[tuple[str, SessionRow]]:
    """(connection name, session) newest start first."""
    query = (sa.select(ConnectionRow.name, SessionRow).join(ConnectionRow, ConnectionRow.id == SessionRow.connection_id)
             .order_by(SessionRow.starts_at.desc(), SessionRow.id.desc()).limit(limit))
    if wanted.connection:
        query = query.where(ConnectionRow.name == wanted.connection)
    if wanted.status:
        query = query.where(SessionRow.status == wanted.status)
    if wanted.attendance:
        query = query.where(SessionRow.attendance_state == wanted.attendance)
    if wanted.starts_from is not None:
        query = query.where(SessionRow.starts_at >= wanted.starts_from)
    if wanted.starts_until is not None:
        query = query.where(SessionRow.starts_at < wanted.starts_until)
    if wanted.text:
        pattern = f"%{wanted.text.strip()}%"
        query = query.where(sa.or_(SessionRow.title.ilike(pattern), SessionRow.external_id.ilike(pattern)))
    rows = [(name, row) for name, row in db.execute(query)]
    if wanted.instructor:  # a JSON list: filtered here, the same on SQLite and PostgreSQL
        email = normalize_email(wanted.instructor)
        rows = [(name, row) for name, row in rows if email in (normalize_email(e) for e in row.instructor_emails)]
    return rows


def session(db: OrmSession, connection: str, external_id: str) -> tuple[ConnectionRow, SessionRow] | None:
    found = db.execute(sa.select(ConnectionRow, SessionRow).join(SessionRow, SessionRow.connection_id ==
                                                                 ConnectionRow.id)
                       .where(ConnectionRow.name == connection, SessionRow.external_id == external_id)).one_or_none()
    return (found[0], found[1]) if found is not None else None


def learners(db: OrmSession, session_id: int) -> list[str]:
    """The part's learners as the LMS spells them: everyone who launched as an attendee or has a decision."""
    launched = db.scalars(sa.select(LaunchRow.lms_email).where(LaunchRow.session_id == session_id,
                                                               LaunchRow.role == "attendee"))
    decided = db.scalars(sa.select(AttendanceResultRow.email).where(AttendanceResultRow.session_id == session_id))
    spelled: dict[str, str] = {}
    for email in [*launched, *decided]:
        spelled.setdefault(normalize_email(email), email)
    return sorted(spelled.values(), key=str.lower)


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # launch | join | leave | job | change
    who: str
    what: str
    detail: dict[str, Any]


def timeline(db: OrmSession, connection: str, row: SessionRow) -> list[TimelineEntry]:
    """Everything that happened to one part, oldest first."""
    entries: list[TimelineEntry] = []
    for launch in db.scalars(sa.select(LaunchRow).where(LaunchRow.session_id == row.id)):
        how = "a personal link" if launch.personal else "the shared link"
        note = launch.identity.get("note") if isinstance(launch.identity, dict) else None
        entries.append(TimelineEntry(launch.clicked_at, "launch", launch.lms_email,
                                     f"launched as {launch.role} and got {how}" + (f" ({note})" if note else ""),
                                     {"role": launch.role, "personal": launch.personal}))
    for segment in db.scalars(sa.select(AttendanceSegmentRow).where(AttendanceSegmentRow.session_id == row.id)):
        who = segment.email or segment.display_name or segment.participant_key
        entries.append(TimelineEntry(segment.joined_at, "join", who, f"joined ({segment.source})",
                                     {"participant": segment.participant_key, "instance": segment.instance}))
        if segment.left_at is not None:
            entries.append(TimelineEntry(segment.left_at, "leave", who, f"left ({segment.source})",
                                         {"participant": segment.participant_key}))
    for job in db.scalars(sa.select(JobRow).where(JobRow.session_id == row.id)):
        outcome = f"{job.kind}: {job.state} after {job.attempts} attempt(s)"
        entries.append(TimelineEntry(job.updated_at, "job", "viltbridge",
                                     outcome + (f" — {job.last_error}" if job.last_error else ""),
                                     {"job": job.id}))
    target = f"session:{connection}/{row.external_id}"
    for change in db.scalars(sa.select(AuditRow).where(AuditRow.target == target)):
        entries.append(TimelineEntry(change.at, "change", change.actor, change.action,
                                     {"before": change.before, "after": change.after}))
    return sorted(entries, key=lambda entry: (entry.at, entry.kind))
