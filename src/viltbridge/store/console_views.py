"""Read models for the console: the sessions list with its filters, and one session's timeline (launches, joins
and leaves, background jobs and admin changes, in time order)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession

from viltbridge.core.emails import normalize_email
from viltbridge.store.tables import (
    AttendanceResultRow,
    AttendanceSegmentRow,
    AuditRow,
    ConnectionRow,
    InstructorRow,
    JobRow,
    LaunchRow,
    LmsReadRow,
    ProviderEventRow,
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


def sessions(db: OrmSession, wanted: SessionFilter, *, limit: int | None = 500) -> list[tuple[str, SessionRow]]:
    """(connection name, session) newest start first; `limit=None` for all (conflict checks need every one)."""
    query = (sa.select(ConnectionRow.name, SessionRow).join(ConnectionRow, ConnectionRow.id == SessionRow.connection_id)
             .order_by(SessionRow.starts_at.desc(), SessionRow.id.desc()))
    if limit is not None and not wanted.instructor:  # the instructor filter runs below: limit after it
        query = query.limit(limit)
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
    return rows if limit is None else rows[:limit]


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
class Health:
    """What an admin checks first when something is off with a connection."""

    jobs: dict[str, int]  # by state
    last_dead_error: str | None
    owed_meetings: int  # parts whose provider work waits for the provider
    last_owed_error: str | None
    events_last_day: int
    last_event_at: datetime | None
    jobs_retrying: int = 0  # queued again after a failed attempt


def health(db: OrmSession, connection_id: int, now: datetime) -> Health:
    jobs = {str(state): int(count) for state, count in db.execute(
        sa.select(JobRow.state, sa.func.count()).where(JobRow.connection_id == connection_id)
        .group_by(JobRow.state))}
    dead = db.scalar(sa.select(JobRow.last_error).where(JobRow.connection_id == connection_id,
                                                        JobRow.state == "dead").order_by(JobRow.id.desc()).limit(1))
    owed = db.scalar(sa.select(sa.func.count()).select_from(SessionRow).where(
        SessionRow.connection_id == connection_id, SessionRow.meeting_pending.is_not(None))) or 0
    owed_error = db.scalar(sa.select(SessionRow.meeting_error).where(
        SessionRow.connection_id == connection_id, SessionRow.meeting_pending.is_not(None))
        .order_by(SessionRow.updated_at.desc()).limit(1))
    recent = db.scalar(sa.select(sa.func.count()).select_from(ProviderEventRow).where(
        ProviderEventRow.connection_id == connection_id, ProviderEventRow.received_at >= now - timedelta(days=1)))
    last = db.scalar(sa.select(sa.func.max(ProviderEventRow.received_at)).where(
        ProviderEventRow.connection_id == connection_id))
    retrying = db.scalar(sa.select(sa.func.count()).select_from(JobRow).where(
        JobRow.connection_id == connection_id, JobRow.state == "queued", JobRow.attempts > 0)) or 0
    return Health(jobs, dead, int(owed), owed_error, int(recent or 0), last, int(retrying))


@dataclass(frozen=True)
class Host:
    email: str
    name: str
    active: bool
    provider_user_id: str | None
    upcoming: int  # scheduled parts from now on


def host_pool(db: OrmSession, connection_id: int, now: datetime) -> list[Host]:
    """The connection's instructors as the provider knows them, and how many classes each has coming."""
    upcoming: dict[str, int] = {}
    for emails in db.scalars(sa.select(SessionRow.instructor_emails).where(
            SessionRow.connection_id == connection_id, SessionRow.status == "scheduled", SessionRow.ends_at >= now)):
        for email in emails or []:
            upcoming[normalize_email(email)] = upcoming.get(normalize_email(email), 0) + 1
    rows = db.scalars(sa.select(InstructorRow).where(InstructorRow.connection_id == connection_id)
                      .order_by(InstructorRow.email))
    return [Host(row.email, f"{row.first_name} {row.last_name}".strip(), row.active, row.provider_user_id,
                 upcoming.get(normalize_email(row.email), 0)) for row in rows]


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
    for read in db.scalars(sa.select(LmsReadRow).where(LmsReadRow.session_id == row.id)):
        said = f"{read.action} (correlationId {read.details['correlationId']})" if read.details.get("correlationId") \
            else read.action
        entries.append(TimelineEntry(read.at, "lms", read.actor, said, {"after": read.details}))
    target = f"session:{connection}/{row.external_id}"
    for change in db.scalars(sa.select(AuditRow).where(AuditRow.target == target)):
        after = change.after if isinstance(change.after, dict) else {}
        said = f"{change.action} (correlationId {after['correlationId']})" if after.get("correlationId") else \
            change.action
        entries.append(TimelineEntry(change.at, "lms" if change.actor.startswith("lms:") else "change", change.actor,
                                     said, {"before": change.before, "after": change.after}))
    return sorted(entries, key=lambda entry: (entry.at, entry.kind))


@dataclass(frozen=True)
class OwedJob:
    """Background work of a connection still to do, or given up: what the admin may retry now or cancel."""

    id: int
    kind: str
    state: str  # dead | running | queued | cancelled
    attempts: int
    max_attempts: int
    run_after: datetime  # when a queued job runs next
    last_error: str | None  # the job's own, or else what its part's owed meeting work last met
    session_external_id: str | None
    session_title: str | None


# In the order the page lists them: what needs a decision first, what was given up last.
OWED_STATES = ("dead", "running", "queued", "cancelled")


def owed_jobs(db: OrmSession, connection_id: int, *, limit: int = 200) -> list[OwedJob]:
    """The connection's dead, running, queued and cancelled jobs (a cancelled one can be run again), each state by
    when it runs next."""
    rows = db.execute(
        sa.select(JobRow, SessionRow.external_id, SessionRow.title, SessionRow.meeting_error)
        .outerjoin(SessionRow, SessionRow.id == JobRow.session_id)
        .where(JobRow.connection_id == connection_id, JobRow.state.in_(OWED_STATES))
        .order_by(sa.case({state: rank for rank, state in enumerate(OWED_STATES)}, value=JobRow.state),
                  JobRow.run_after, JobRow.id).limit(limit))
    # A save that met the outage left its reason on the part, not on the job (which has not run yet).
    return [OwedJob(job.id, job.kind, job.state, job.attempts, job.max_attempts, job.run_after,
                    job.last_error or (meeting_error if job.kind == "meeting.sync" else None), external_id, title)
            for job, external_id, title, meeting_error in rows]
