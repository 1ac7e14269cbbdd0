"""Repositories: sync functions over a SQLAlchemy `Session`, shared by both tiers.

The CLI and workers call them directly; the web tier calls them through `AsyncSqlStore`, which runs each one
with `AsyncSession.run_sync` (asyncpg/aiosqlite underneath), so there is one implementation of every query.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession

from viltbridge.core.attendance import AttendanceDecision, AttendanceOverride, LedgerSegment, Review
from viltbridge.core.models import (
    AttendanceState,
    Connection,
    Instructor,
    JobRequest,
    Launch,
    Meeting,
    Registration,
    Role,
    Session,
    SessionStatus,
    VendorOptions,
)
from viltbridge.core.provider import ProviderEvent
from viltbridge.core.schedule import Booking, host_account_of
from viltbridge.security.crypto import Keyring
from viltbridge.store import attendance_ledger, job_ledger
from viltbridge.store.db import Readable, SyncRunner
from viltbridge.store.tables import (
    ConnectionRow,
    InstructorRow,
    LaunchRow,
    ProviderEventRow,
    RegistrationRow,
    SessionRow,
)

T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC)


# --- connections -------------------------------------------------------------------------------------------


# Reads on the request path select columns with Core (tables' `__table__`) rather than loading ORM entities:
# measured 42 us vs 173 us per query on SQLite; writes go through the ORM.
_CONNECTIONS = ConnectionRow.__table__
_INSTRUCTORS = InstructorRow.__table__
_SESSIONS = SessionRow.__table__
_LAUNCHES = LaunchRow.__table__

# Built once: constructing a statement per call costs ~4x its execution (measured 100 us vs 26 us on SQLite).
_CONNECTION_BY_USERNAME = sa.select(_CONNECTIONS).where(_CONNECTIONS.c.username == sa.bindparam("username"))
_CONNECTION_BY_ID = sa.select(_CONNECTIONS).where(_CONNECTIONS.c.id == sa.bindparam("id"))
_INSTRUCTOR = sa.select(_INSTRUCTORS).where(
    _INSTRUCTORS.c.connection_id == sa.bindparam("connection_id"), _INSTRUCTORS.c.email == sa.bindparam("email")
)
_ACTIVE_INSTRUCTOR = sa.select(_INSTRUCTORS.c.id).where(
    _INSTRUCTORS.c.connection_id == sa.bindparam("connection_id"),
    _INSTRUCTORS.c.email == sa.bindparam("email"),
    _INSTRUCTORS.c.active,
)
_SESSION_BY_EXTERNAL_ID = sa.select(_SESSIONS).where(
    _SESSIONS.c.connection_id == sa.bindparam("connection_id"),
    _SESSIONS.c.external_id == sa.bindparam("external_id"),
)
_SESSION_BY_ID = sa.select(_SESSIONS).where(_SESSIONS.c.id == sa.bindparam("id"))

# A connection as read for a request (a Core row) or as loaded for administration (an ORM row): same attributes.
ConnectionRecord = ConnectionRow | sa.Row[Any]


def connection_from_row(row: ConnectionRecord, keyring: Keyring) -> Connection:
    return Connection(
        id=row.id,
        name=row.name,
        provider=row.provider,
        provider_settings=keyring.decrypt_json(row.provider_settings),
        username=row.username,
        options=VendorOptions(
            automatic_cancellation=row.automatic_cancellation,
            extended_options=row.extended_options,
            launch_window_minutes=row.launch_window_minutes,
        ),
        active=row.active,
        attendance_policy=dict(row.attendance_policy or {}),
    )


def _storable(key: str) -> bool:
    """Whether any row can hold `key`: none holds a NUL, and PostgreSQL refuses one as a query parameter (an error
    where the answer is simply "no such row")."""
    return "\x00" not in key


def connection_row_by_username(db: Readable, username: str) -> sa.Row[Any] | None:
    if not _storable(username):
        return None
    return db.connection().execute(_CONNECTION_BY_USERNAME, {"username": username}).one_or_none()


def connection_row(db: Readable, connection_id: int) -> sa.Row[Any] | None:
    return db.connection().execute(_CONNECTION_BY_ID, {"id": connection_id}).one_or_none()


_CONNECTION_BY_NAME = sa.select(_CONNECTIONS).where(_CONNECTIONS.c.name == sa.bindparam("name"))


def connection_row_by_name_readonly(db: Readable, name: str) -> sa.Row[Any] | None:
    if not _storable(name):
        return None
    return db.connection().execute(_CONNECTION_BY_NAME, {"name": name}).one_or_none()


def connection_row_by_name(db: OrmSession, name: str) -> ConnectionRow | None:
    return db.scalars(sa.select(ConnectionRow).where(ConnectionRow.name == name)).one_or_none()


def has_connections(database_url: str) -> bool:
    """Whether a (possibly not yet migrated) database already holds connections."""
    from viltbridge.store.db import sync_engine

    engine = sync_engine(database_url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("connections"):
                return False
            return conn.execute(sa.select(sa.func.count()).select_from(_CONNECTIONS)).scalar_one() > 0
    finally:
        engine.dispose()


def all_connection_rows(db: OrmSession) -> list[ConnectionRow]:
    return list(db.scalars(sa.select(ConnectionRow).order_by(ConnectionRow.name)))


# --- instructors -------------------------------------------------------------------------------------------


def _instructor(row: InstructorRow | sa.Row[Any]) -> Instructor:
    return Instructor(
        id=row.id, connection_id=row.connection_id, email=row.email, first_name=row.first_name,
        last_name=row.last_name, active=row.active, provider_user_id=row.provider_user_id,
        provider_data=dict(row.provider_data or {}),
    )


def host_pool(db: Readable, connection_id: int) -> tuple[int, int]:
    """The connection's active instructors, and how many of them have an account at the provider."""
    row = db.connection().execute(
        sa.select(sa.func.count(), sa.func.count(InstructorRow.provider_user_id))
        .where(InstructorRow.connection_id == connection_id, InstructorRow.active)).one()
    return int(row[0]), int(row[1])


def find_instructor(db: Readable, connection_id: int, email: str) -> Instructor | None:
    row = db.connection().execute(_INSTRUCTOR, {"connection_id": connection_id, "email": email}).one_or_none()
    return _instructor(row) if row else None


def is_active_instructor(db: Readable, connection_id: int, email: str) -> bool:
    found = db.connection().execute(_ACTIVE_INSTRUCTOR, {"connection_id": connection_id, "email": email}).first()
    return found is not None


def save_instructor(db: OrmSession, instructor: Instructor) -> Instructor:
    now = _now()
    row = db.get(InstructorRow, instructor.id) if instructor.id else None
    if row is None:
        row = InstructorRow(connection_id=instructor.connection_id, created_at=now)
        db.add(row)
    row.email, row.first_name, row.last_name = instructor.email, instructor.first_name, instructor.last_name
    row.active, row.provider_user_id = instructor.active, instructor.provider_user_id
    row.provider_data, row.updated_at = dict(instructor.provider_data), now
    db.flush()
    return _instructor(row)


def rename_session_instructor(db: OrmSession, connection_id: int, old_email: str, new_email: str) -> int:
    # JSON lists are small and per-connection; filter in Python so the same code runs on SQLite and PostgreSQL.
    changed = 0
    for row in db.scalars(sa.select(SessionRow).where(SessionRow.connection_id == connection_id)):
        if old_email in (row.instructor_emails or []):
            row.instructor_emails = [new_email if email == old_email else email for email in row.instructor_emails]
            changed += 1
    db.flush()
    return changed


# --- sessions ----------------------------------------------------------------------------------------------


def _session(row: SessionRow | sa.Row[Any]) -> Session:
    meeting = None
    if row.meeting_id is not None and row.meeting_provider is not None:
        meeting = Meeting(provider=row.meeting_provider, meeting_id=row.meeting_id,
                          join_url=row.meeting_join_url or "", host_url=row.meeting_host_url,
                          data=dict(row.meeting_data or {}), cancelled=bool(row.meeting_cancelled))
    return Session(
        id=row.id, connection_id=row.connection_id, external_id=row.external_id, lo_id=row.lo_id,
        title=row.title, description=row.description, creator_email=row.creator_email,
        starts_at=row.starts_at, ends_at=row.ends_at, utc_offset_minutes=row.utc_offset_minutes, zone=row.zone,
        instructor_emails=list(row.instructor_emails or []), extended_options=dict(row.extended_options or {}),
        status=SessionStatus(row.status), meeting=meeting, attendance_state=AttendanceState(row.attendance_state),
        meeting_pending=row.meeting_pending, meeting_error=row.meeting_error,
        attendance_policy=dict(row.attendance_policy or {}),
        cancelled_at=row.cancelled_at, created_at=row.created_at, updated_at=row.updated_at, edits=row.edits,
    )


def find_session(db: Readable, connection_id: int, external_id: str) -> Session | None:
    row = db.connection().execute(
        _SESSION_BY_EXTERNAL_ID, {"connection_id": connection_id, "external_id": external_id}
    ).one_or_none()
    return _session(row) if row else None


def get_session(db: Readable, session_id: int) -> Session | None:
    row = db.connection().execute(_SESSION_BY_ID, {"id": session_id}).one_or_none()
    return _session(row) if row else None


def save_session(db: OrmSession, session: Session) -> Session:
    now = _now()
    row = db.get(SessionRow, session.id) if session.id else None
    if row is None:
        row = SessionRow(connection_id=session.connection_id, external_id=session.external_id,
                         created_at=session.created_at or now)
        db.add(row)
    row.lo_id, row.title, row.description = session.lo_id, session.title, session.description
    row.creator_email = session.creator_email
    row.starts_at, row.ends_at = session.starts_at, session.ends_at
    row.utc_offset_minutes, row.zone = session.utc_offset_minutes, session.zone
    row.instructor_emails, row.extended_options = list(session.instructor_emails), dict(session.extended_options)
    row.status, row.attendance_state = session.status.value, session.attendance_state.value
    meeting = session.meeting
    row.meeting_provider = meeting.provider if meeting else None
    row.meeting_id = meeting.meeting_id if meeting else None
    row.meeting_join_url = meeting.join_url if meeting else None
    row.meeting_host_url = meeting.host_url if meeting else None
    row.meeting_data = dict(meeting.data) if meeting else {}
    row.meeting_cancelled = meeting.cancelled if meeting else False
    row.meeting_pending, row.meeting_error = session.meeting_pending, session.meeting_error
    row.attendance_policy = dict(session.attendance_policy)
    row.cancelled_at, row.updated_at = session.cancelled_at, session.updated_at or now
    row.edits = session.edits
    db.flush()
    return _session(row)


def finalize_ended_sessions(db: OrmSession, connection_ids: list[int], now: datetime) -> int:
    """Set attendance_state=final on scheduled sessions of these connections that ended before `now`."""
    if not connection_ids:
        return 0
    result = db.execute(
        sa.update(SessionRow)
        .where(
            SessionRow.connection_id.in_(connection_ids),
            SessionRow.status == SessionStatus.SCHEDULED.value,
            SessionRow.attendance_state != AttendanceState.FINAL.value,
            SessionRow.ends_at < now,
        )
        .values(attendance_state=AttendanceState.FINAL.value, updated_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def set_attendance_state(db: OrmSession, session_id: int, state: AttendanceState) -> None:
    """Only this column: a concurrent edit of the session's other fields must not be undone."""
    db.execute(sa.update(SessionRow).where(SessionRow.id == session_id).values(attendance_state=state.value))


def lock(db: OrmSession, key: str) -> None:
    """A transaction-scoped lock on `key`. PostgreSQL: an advisory lock. SQLite needs none: its write transactions
    begin IMMEDIATE (see store.db), so they already run one at a time."""
    if db.get_bind().dialect.name == "postgresql":
        number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
        db.execute(sa.select(sa.func.pg_advisory_xact_lock(number)))


# --- launches ----------------------------------------------------------------------------------------------


def record_launch(db: OrmSession, launch: Launch, keyring: Keyring) -> None:
    """The provider URL is encrypted: a start link carries the host's token, a registrant link lets anyone in as
    that learner."""
    db.add(LaunchRow(session_id=launch.session_id, email=launch.email, lms_email=launch.lms_email,
                     role=launch.role.value,
                     clicked_at=launch.clicked_at, provider_url=keyring.encrypt_text(launch.provider_url),
                     personal=launch.personal,
                     user_agent=(launch.user_agent or None) and launch.user_agent[:500],
                     identity=dict(launch.identity)))
    db.flush()


_LAST_PERSONAL_LAUNCH = (
    sa.select(_LAUNCHES)
    .where(_LAUNCHES.c.session_id == sa.bindparam("session_id"), _LAUNCHES.c.email == sa.bindparam("email"),
           _LAUNCHES.c.personal)
    .order_by(_LAUNCHES.c.clicked_at.desc(), _LAUNCHES.c.id.desc())
    .limit(1)
)


def _launch(row: sa.Row[Any], keyring: Keyring) -> Launch:
    return Launch(session_id=row.session_id, email=row.email, lms_email=row.lms_email, role=Role(row.role),
                  clicked_at=row.clicked_at,
                  # Rows written before links were encrypted hold plain URLs; a Fernet token starts "gAAAAA".
                  provider_url=(keyring.decrypt_text(row.provider_url) if row.provider_url.startswith("gAAAAA")
                                else row.provider_url),
                  personal=row.personal,
                  user_agent=row.user_agent, identity=dict(row.identity or {}))


def last_personal_launch(db: Readable, session_id: int, email: str, keyring: Keyring) -> Launch | None:
    row = db.connection().execute(_LAST_PERSONAL_LAUNCH, {"session_id": session_id, "email": email}).first()
    return _launch(row, keyring) if row else None


def launches_between(
    db: Readable, session_id: int, start: datetime, end: datetime, keyring: Keyring
) -> list[Launch]:
    rows = db.connection().execute(
        sa.select(_LAUNCHES)
        .where(_LAUNCHES.c.session_id == session_id, _LAUNCHES.c.clicked_at >= start, _LAUNCHES.c.clicked_at <= end)
        .order_by(_LAUNCHES.c.clicked_at, _LAUNCHES.c.id)
    )
    return [_launch(row, keyring) for row in rows]


# --- registrations made ahead of the click ----------------------------------------------------------------------

_REGISTRATIONS = RegistrationRow.__table__

_REGISTRATION = (
    sa.select(_REGISTRATIONS)
    .where(_REGISTRATIONS.c.session_id == sa.bindparam("session_id"), _REGISTRATIONS.c.email == sa.bindparam("email"),
           _REGISTRATIONS.c.meeting_id == sa.bindparam("meeting_id"))
)


def registration(db: Readable, session_id: int, email: str, meeting_id: str, keyring: Keyring) -> Registration | None:
    """The learner's link registered ahead for the part's meeting as it is (`meeting_id`), if any."""
    row = db.connection().execute(_REGISTRATION, {"session_id": session_id, "email": email,
                                                  "meeting_id": meeting_id}).first()
    if row is None:
        return None
    return Registration(session_id=row.session_id, email=row.email, lms_email=row.lms_email,
                        meeting_id=row.meeting_id, provider_url=keyring.decrypt_text(row.provider_url),
                        identity=dict(row.identity or {}), registered_at=row.registered_at)


def save_registrations(db: OrmSession, registrations: list[Registration], keyring: Keyring) -> None:
    """Keep these links, replacing any a learner had for the part (made for a meeting since replaced). The link is
    encrypted: it lets anyone in as that learner."""
    for session_id in {r.session_id for r in registrations}:
        emails = [r.email for r in registrations if r.session_id == session_id]
        db.execute(sa.delete(_REGISTRATIONS).where(_REGISTRATIONS.c.session_id == session_id,
                                                   _REGISTRATIONS.c.email.in_(emails)))
    db.add_all(RegistrationRow(session_id=r.session_id, email=r.email, lms_email=r.lms_email,
                               meeting_id=r.meeting_id, provider_url=keyring.encrypt_text(r.provider_url),
                               identity=dict(r.identity), registered_at=r.registered_at) for r in registrations)
    db.flush()


def learners_to_register(db: Readable, session: Session) -> list[tuple[str, str]]:
    """(email, lms_email) of the learners who launched another part of the part's multi-part session (`lo_id`)
    and have neither a personal link for this part nor one registered for its meeting as it is: the people to
    register ahead. In the order they first launched; `lms_email` as they were last spelled."""
    if session.lo_id is None or session.id is None or session.meeting is None:
        return []
    here = _LAUNCHES.alias("here")
    registered = _REGISTRATIONS
    rows = db.connection().execute(
        sa.select(_LAUNCHES.c.email, _LAUNCHES.c.lms_email)
        .join(_SESSIONS, _SESSIONS.c.id == _LAUNCHES.c.session_id)
        .where(_SESSIONS.c.connection_id == session.connection_id, _SESSIONS.c.lo_id == session.lo_id,
               _SESSIONS.c.id != session.id, _LAUNCHES.c.role == Role.ATTENDEE.value,
               ~sa.exists().where(here.c.session_id == session.id, here.c.email == _LAUNCHES.c.email,
                                  here.c.personal),
               ~sa.exists().where(registered.c.session_id == session.id, registered.c.email == _LAUNCHES.c.email,
                                  registered.c.meeting_id == session.meeting.meeting_id))
        .order_by(_LAUNCHES.c.clicked_at, _LAUNCHES.c.id))
    return list({email: lms_email for email, lms_email in rows}.items())  # first launch's order, last spelling


def other_parts(db: Readable, session: Session) -> list[Session]:
    """The other scheduled parts of the part's multi-part session (`lo_id`), in the order they start."""
    if session.lo_id is None or session.id is None:
        return []
    rows = db.connection().execute(
        sa.select(_SESSIONS)
        .where(_SESSIONS.c.connection_id == session.connection_id, _SESSIONS.c.lo_id == session.lo_id,
               _SESSIONS.c.id != session.id, _SESSIONS.c.status == SessionStatus.SCHEDULED.value)
        .order_by(_SESSIONS.c.starts_at, _SESSIONS.c.id))
    return [_session(row) for row in rows]


# --- provider events (webhooks) -------------------------------------------------------------------------------


def bookings_between(db: Readable, start: datetime, end: datetime) -> list[Booking]:
    connections_table = ConnectionRow.__table__
    rows = db.connection().execute(
        sa.select(connections_table.c.name, _SESSIONS.c.external_id, _SESSIONS.c.title, _SESSIONS.c.starts_at,
                  _SESSIONS.c.ends_at, _SESSIONS.c.instructor_emails, _SESSIONS.c.meeting_provider,
                  _SESSIONS.c.meeting_data)
        .join(connections_table, connections_table.c.id == _SESSIONS.c.connection_id)
        .where(_SESSIONS.c.status == SessionStatus.SCHEDULED.value, _SESSIONS.c.starts_at < end,
               _SESSIONS.c.ends_at > start))
    bookings = []
    for row in rows:
        bookings.append(Booking(row.name, row.external_id, row.title, row.starts_at, row.ends_at,
                                tuple(row.instructor_emails or ()),
                                host_account_of(row.meeting_provider, row.meeting_data)))
    return bookings


def store_provider_events(db: OrmSession, connection_id: int, events: list[ProviderEvent], now: datetime) -> int:
    """Keep each event once (a redelivery has the same dedupe key); returns how many were new."""
    new = 0
    for event in events:
        exists = db.scalar(sa.select(ProviderEventRow.id).where(
            ProviderEventRow.connection_id == connection_id, ProviderEventRow.dedupe_key == event.dedupe_key))
        if exists is not None:
            continue
        db.add(ProviderEventRow(connection_id=connection_id, dedupe_key=event.dedupe_key, meeting_id=event.meeting_id,
                                event=event.event, occurred_at=event.occurred_at, received_at=now, raw=event.raw))
        new += 1
    db.flush()
    return new


_EVENTS = ProviderEventRow.__table__
_MEETING_EVENTS = (
    sa.select(_EVENTS)
    .where(_EVENTS.c.connection_id == sa.bindparam("connection_id"), _EVENTS.c.meeting_id == sa.bindparam("meeting_id"))
    .order_by(_EVENTS.c.occurred_at, _EVENTS.c.id)
)


def provider_events(db: Readable, connection_id: int, meeting_id: str) -> list[ProviderEvent]:
    rows = db.connection().execute(_MEETING_EVENTS, {"connection_id": connection_id, "meeting_id": meeting_id})
    return [ProviderEvent(dedupe_key=row.dedupe_key, meeting_id=row.meeting_id, event=row.event,
                          occurred_at=row.occurred_at, raw=row.raw) for row in rows]


# --- the async face of the same functions ------------------------------------------------------------------


class AsyncSqlStore:
    """`core.ports.Store` for the web tier: each call runs the sync repository function via `run_sync`."""

    def __init__(self, db: SyncRunner, keyring: Keyring) -> None:
        self._db = db
        self._keyring = keyring
        self.enqueued: list[int] = []  # jobs asked for in this transaction, to hand to the queue once committed

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._db.run_sync(fn, *args)

    async def lock(self, key: str) -> None:
        await self._run(lock, key)

    async def set_attendance_state(self, session_id: int, state: AttendanceState) -> None:
        await self._run(set_attendance_state, session_id, state)

    async def get_connection(self, connection_id: int) -> Connection | None:
        row = await self._run(connection_row, connection_id)
        return connection_from_row(row, self._keyring) if row else None

    async def find_instructor(self, connection_id: int, email: str) -> Instructor | None:
        return await self._run(find_instructor, connection_id, email)

    async def is_active_instructor(self, connection_id: int, email: str) -> bool:
        return await self._run(is_active_instructor, connection_id, email)

    async def save_instructor(self, instructor: Instructor) -> Instructor:
        return await self._run(save_instructor, instructor)

    async def rename_session_instructor(self, connection_id: int, old_email: str, new_email: str) -> int:
        return await self._run(rename_session_instructor, connection_id, old_email, new_email)

    async def find_session(self, connection_id: int, external_id: str) -> Session | None:
        return await self._run(find_session, connection_id, external_id)

    async def get_session(self, session_id: int) -> Session | None:
        return await self._run(get_session, session_id)

    async def save_session(self, session: Session) -> Session:
        return await self._run(save_session, session)

    async def attendance_segments(self, session_id: int) -> list[LedgerSegment]:
        return await self._run(attendance_ledger.segments, session_id)

    async def save_attendance_segments(self, session_id: int, segments: list[LedgerSegment], now: datetime) -> int:
        return await self._run(attendance_ledger.save_segments, session_id, segments, now)

    async def save_attendance_results(self, session_id: int, decisions: list[AttendanceDecision],
                                      reviews: list[Review], state: str, now: datetime) -> None:
        await self._run(attendance_ledger.save_results, session_id, decisions, reviews, state, now)

    async def attendance_aliases(self, connection_id: int) -> dict[str, str]:
        return await self._run(attendance_ledger.aliases, connection_id)

    async def attendance_overrides(self, session_id: int) -> list[AttendanceOverride]:
        return await self._run(attendance_ledger.overrides, session_id)

    async def enqueue_job(self, request: JobRequest) -> int:
        job_id = await self._run(job_ledger.enqueue, request, _now())
        self.enqueued.append(job_id)
        return job_id

    async def record_launch(self, launch: Launch) -> None:
        await self._run(record_launch, launch, self._keyring)

    async def last_personal_launch(self, session_id: int, email: str) -> Launch | None:
        return await self._run(last_personal_launch, session_id, email, self._keyring)

    async def provider_events(self, connection_id: int, meeting_id: str) -> list[ProviderEvent]:
        return await self._run(provider_events, connection_id, meeting_id)

    async def registration(self, session_id: int, email: str, meeting_id: str) -> Registration | None:
        return await self._run(registration, session_id, email, meeting_id, self._keyring)

    async def save_registrations(self, registrations: list[Registration]) -> None:
        await self._run(save_registrations, registrations, self._keyring)

    async def learners_to_register(self, session: Session) -> list[tuple[str, str]]:
        return await self._run(learners_to_register, session)

    async def other_parts(self, session: Session) -> list[Session]:
        return await self._run(other_parts, session)

    async def launches_between(self, session_id: int, start: datetime, end: datetime) -> list[Launch]:
        return await self._run(launches_between, session_id, start, end, self._keyring)

    async def bookings_between(self, start: datetime, end: datetime) -> list[Booking]:
        return await self._run(bookings_between, start, end)
