"""Read models for the console: the sessions list with its filters, and one session's timeline (launches, joins
and leaves, background jobs and admin changes, in time order)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession

from viltbridge.core.emails import normalize_email
from viltbridge.core.models import SessionStatus
from viltbridge.core.part_states import AttendancePhase, PartLife
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
    status: PartLife | None = None  # read from the dates at `now`
    attendance: AttendancePhase | None = None
    now: datetime | None = None  # required with `status` or `attendance`
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
    if wanted.status is not None:
        query = query.where(_life_is(wanted.status, _now_of(wanted)))
    if wanted.attendance is not None:
        query = query.where(_attendance_is(wanted.attendance, _now_of(wanted)))
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


def _now_of(wanted: SessionFilter) -> datetime:
    if wanted.now is None:
        raise ValueError("a filter by status or attendance needs `now`: both are read from the dates")
    return wanted.now


def _life_is(life: PartLife, now: datetime) -> sa.ColumnElement[bool]:
    """`core.part_states.part_life` as SQL (the same boundaries)."""
    if life is PartLife.CANCELLED:
        return SessionRow.status == SessionStatus.CANCELLED.value
    going_ahead = SessionRow.status != SessionStatus.CANCELLED.value
    if life is PartLife.SCHEDULED:
        return sa.and_(going_ahead, SessionRow.starts_at > now)
    if life is PartLife.LIVE:
        return sa.and_(going_ahead, SessionRow.starts_at <= now, SessionRow.ends_at > now)
    return sa.and_(going_ahead, SessionRow.ends_at <= now)


def _attendance_is(phase: AttendancePhase, now: datetime) -> sa.ColumnElement[bool]:
    """`core.part_states.attendance_phase` as SQL (the same boundaries)."""
    if phase is AttendancePhase.NOT_YET:
        return SessionRow.starts_at > now
    return sa.and_(SessionRow.starts_at <= now, SessionRow.attendance_state == phase.value)


def connection_names(db: OrmSession) -> list[str]:
    return list(db.scalars(sa.select(ConnectionRow.name).order_by(ConnectionRow.name)))


@dataclass(frozen=True)
class PartPlace:
    """Where a part sits in its multi-part session (the parts sharing its LoId, by start)."""

    number: int
    count: int
    lo_id: str

    def describe(self) -> str:
        return f"part {self.number} of {self.count}"


def part_places(db: OrmSession, parts: Iterable[SessionRow]) -> dict[int, PartPlace]:
    """By session row id, for the parts given that share their LoId with at least one other part."""
    return places_in_sessions(db, {(row.connection_id, row.lo_id) for row in parts if row.lo_id})


def places_in_sessions(db: OrmSession, sessions: Iterable[tuple[int, str]]) -> dict[int, PartPlace]:
    """By session row id, every part of the (connection id, LoId) sessions that have more than one part; numbered
    by start, cancelled parts too (a part keeps its number when another is cancelled). One query for them all."""
    wanted = set(sessions)
    if not wanted:
        return {}
    found = db.execute(sa.select(SessionRow.id, SessionRow.connection_id, SessionRow.lo_id)
                       .where(SessionRow.connection_id.in_({connection_id for connection_id, _ in wanted}),
                              SessionRow.lo_id.in_({lo_id for _, lo_id in wanted}))
                       .order_by(SessionRow.starts_at, SessionRow.external_id))
    parts: dict[tuple[int, str], list[int]] = {}
    for part_id, connection_id, lo_id in found:
        if (connection_id, lo_id) in wanted:
            parts.setdefault((connection_id, lo_id), []).append(part_id)
    return {part_id: PartPlace(number, len(ids), lo_id)
            for (_, lo_id), ids in parts.items() if len(ids) > 1
            for number, part_id in enumerate(ids, start=1)}


def sibling_parts(db: OrmSession, row: SessionRow) -> list[SessionRow]:
    """Every part of the row's multi-part session by start, the row included; just the row without an LoId."""
    if not row.lo_id:
        return [row]
    return list(db.scalars(sa.select(SessionRow).where(SessionRow.connection_id == row.connection_id,
                                                       SessionRow.lo_id == row.lo_id)
                           .order_by(SessionRow.starts_at, SessionRow.external_id)))


def parts_going_ahead(db: OrmSession, connection: str, lo_id: str) -> list[tuple[datetime, str]]:
    """(start, LMS session id) of the parts of one multi-part session that are not cancelled."""
    return [(starts_at, external_id) for starts_at, external_id in db.execute(
        sa.select(SessionRow.starts_at, SessionRow.external_id)
        .join(ConnectionRow, ConnectionRow.id == SessionRow.connection_id)
        .where(ConnectionRow.name == connection, SessionRow.lo_id == lo_id,
               SessionRow.status != SessionStatus.CANCELLED.value))]


def launch_times(db: OrmSession, session_id: int) -> dict[str, list[datetime]]:
    """When each learner clicked their launch link, by the email as the LMS spelled it, oldest first."""
    clicks: dict[str, list[datetime]] = {}
    for email, clicked_at in db.execute(sa.select(LaunchRow.lms_email, LaunchRow.clicked_at).where(
            LaunchRow.session_id == session_id, LaunchRow.role == "attendee").order_by(LaunchRow.clicked_at)):
        clicks.setdefault(email, []).append(clicked_at)
    return clicks


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
