"""ORM rows. Separate from the domain records in `core.models`; `store.repository` maps between them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out. SQLite drops tzinfo from DateTime(timezone=True); this puts it back."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; pass an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: sa.JSON, list[str]: sa.JSON}


class ConnectionRow(Base):
    __tablename__ = "connections"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    provider: Mapped[str] = mapped_column(sa.String(40))
    provider_settings: Mapped[str] = mapped_column(sa.Text, doc="Fernet-encrypted JSON")
    username: Mapped[str] = mapped_column(sa.String(200), unique=True)
    secret_salt: Mapped[str] = mapped_column(sa.String(64))
    secret_digest: Mapped[str] = mapped_column(sa.String(128))
    automatic_cancellation: Mapped[bool] = mapped_column(default=True)
    extended_options: Mapped[bool] = mapped_column(default=False)
    launch_window_minutes: Mapped[int] = mapped_column(default=15)
    active: Mapped[bool] = mapped_column(default=True)
    attendance_policy: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}",
                                                              doc="AttendancePolicy settings; {} = defaults")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class InstructorRow(Base):
    __tablename__ = "instructors"
    __table_args__ = (sa.UniqueConstraint("connection_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(sa.ForeignKey("connections.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(sa.String(320))
    first_name: Mapped[str] = mapped_column(sa.String(200))
    last_name: Mapped[str] = mapped_column(sa.String(200))
    active: Mapped[bool] = mapped_column(default=True)
    provider_user_id: Mapped[str | None] = mapped_column(sa.String(200))
    provider_data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SessionRow(Base):
    __tablename__ = "sessions"
    __table_args__ = (
        sa.UniqueConstraint("connection_id", "external_id"),
        sa.Index("ix_sessions_connection_lo", "connection_id", "lo_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(sa.ForeignKey("connections.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(sa.String(200))
    lo_id: Mapped[str | None] = mapped_column(sa.String(200))
    title: Mapped[str] = mapped_column(sa.Text)
    description: Mapped[str] = mapped_column(sa.Text)
    creator_email: Mapped[str] = mapped_column(sa.String(320))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    utc_offset_minutes: Mapped[int]
    zone: Mapped[str] = mapped_column(sa.String(64))
    instructor_emails: Mapped[list[str]] = mapped_column(default=list)
    extended_options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(sa.String(20))
    attendance_state: Mapped[str] = mapped_column(sa.String(20))
    meeting_provider: Mapped[str | None] = mapped_column(sa.String(40))
    meeting_id: Mapped[str | None] = mapped_column(sa.String(200))
    meeting_join_url: Mapped[str | None] = mapped_column(sa.Text)
    meeting_host_url: Mapped[str | None] = mapped_column(sa.Text)
    meeting_data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    meeting_cancelled: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    meeting_pending: Mapped[str | None] = mapped_column(sa.String(10), doc="create | update | cancel, owed")
    attendance_policy: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}",
                                                              doc="overrides of the connection's policy")
    meeting_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    cancelled_at: Mapped[datetime | None]
    edits: Mapped[int] = mapped_column(default=0, server_default=sa.text("0"),
                                       doc="changes since creation: the calendar feed's SEQUENCE")


class LaunchRow(Base):
    __tablename__ = "launches"
    __table_args__ = (sa.Index("ix_launches_session_clicked", "session_id", "clicked_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(sa.ForeignKey("sessions.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(sa.String(320), doc="normalised: the person's key")
    lms_email: Mapped[str] = mapped_column(sa.String(320), doc="as the LMS spelled it")
    role: Mapped[str] = mapped_column(sa.String(20))
    clicked_at: Mapped[datetime]
    provider_url: Mapped[str] = mapped_column(sa.Text)
    personal: Mapped[bool]
    user_agent: Mapped[str | None] = mapped_column(sa.String(500))
    identity: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=sa.text("'{}'"))


class RegistrationRow(Base):
    """Learners registered with the provider ahead of their click (`core.models.Registration`): their personal
    link, encrypted, for the part's meeting as it was then."""

    __tablename__ = "registrations"
    __table_args__ = (sa.UniqueConstraint("session_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(sa.ForeignKey("sessions.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(sa.String(320), doc="normalised: the person's key")
    lms_email: Mapped[str] = mapped_column(sa.String(320), doc="as the LMS spelled it")
    meeting_id: Mapped[str] = mapped_column(sa.String(200), doc="the meeting the link belongs to")
    provider_url: Mapped[str] = mapped_column(sa.Text)
    identity: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=sa.text("'{}'"))
    registered_at: Mapped[datetime]


class ProviderEventRow(Base):
    """Webhook events as received (raw), once each: the live side of the attendance ledger."""

    __tablename__ = "provider_events"
    __table_args__ = (
        sa.UniqueConstraint("connection_id", "dedupe_key"),
        sa.Index("ix_provider_events_meeting", "connection_id", "meeting_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(sa.ForeignKey("connections.id", ondelete="CASCADE"))
    dedupe_key: Mapped[str] = mapped_column(sa.String(200))
    meeting_id: Mapped[str | None] = mapped_column(sa.String(200))
    event: Mapped[str] = mapped_column(sa.String(100))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]
    raw: Mapped[str] = mapped_column(sa.Text)


class JobRow(Base):
    """The job ledger: background work written in the same transaction as the data that needs it.

    Huey only carries "run job N" messages; the ledger is the truth, so a lost message or a killed worker loses
    nothing (a lease that runs out puts the job back in the queue)."""

    __tablename__ = "jobs"
    __table_args__ = (sa.Index("ix_jobs_due", "state", "run_after"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(64))
    dedupe_key: Mapped[str] = mapped_column(sa.String(255), unique=True)
    payload: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(sa.String(16), doc="queued | running | done | dead | cancelled")
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=12)
    run_after: Mapped[datetime]
    lease_owner: Mapped[str | None] = mapped_column(sa.String(200))
    lease_until: Mapped[datetime | None]
    run_again: Mapped[bool] = mapped_column(default=False, doc="asked for again while running: requeue, not done")
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    connection_id: Mapped[int | None] = mapped_column(sa.ForeignKey("connections.id", ondelete="CASCADE"))
    session_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class PeriodicRunRow(Base):
    """One row per periodic task and time slot: whichever worker inserts it runs that slot; the others skip."""

    __tablename__ = "periodic_runs"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    slot: Mapped[datetime] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(sa.String(200))
    started_at: Mapped[datetime]


class AttendanceSegmentRow(Base):
    """The attendance ledger: every join/leave segment from every source, once per source and provider identity.
    Rows are never deleted: a later report adds or corrects, it does not erase another instance's segments."""

    __tablename__ = "attendance_segments"
    __table_args__ = (sa.UniqueConstraint("session_id", "source", "dedupe_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(sa.ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(sa.String(16), doc="report | webhook")
    instance: Mapped[str] = mapped_column(sa.String(200), default="")
    dedupe_key: Mapped[str] = mapped_column(sa.String(500))
    participant_key: Mapped[str] = mapped_column(sa.String(200))
    joined_at: Mapped[datetime]
    left_at: Mapped[datetime | None]
    email: Mapped[str | None] = mapped_column(sa.String(320))
    display_name: Mapped[str | None] = mapped_column(sa.String(500))
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    first_seen_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AttendanceResultRow(Base):
    """The latest decision per learner and part, with the calculation spelled out (replaced on each recompute)."""

    __tablename__ = "attendance_results"

    session_id: Mapped[int] = mapped_column(sa.ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    email_key: Mapped[str] = mapped_column(sa.String(320), primary_key=True, doc="normalised email")
    email: Mapped[str] = mapped_column(sa.String(320), doc="as the LMS spells it")
    attended: Mapped[bool]
    explanation: Mapped[str] = mapped_column(sa.Text)
    state: Mapped[str] = mapped_column(sa.String(20), doc="provisional | final")
    computed_at: Mapped[datetime]


class AttendanceReviewRow(Base):
    """Segments no rule could credit: ambiguous ones (with why) and unmatched ones (guests without a link, hosts,
    dial-ins), for a person to look at. Replaced on each recompute."""

    __tablename__ = "attendance_reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(sa.ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(16), doc="ambiguous | unmatched")
    reason: Mapped[str] = mapped_column(sa.Text)
    display_name: Mapped[str | None] = mapped_column(sa.String(500))
    email: Mapped[str | None] = mapped_column(sa.String(320))
    joined_at: Mapped[datetime]
    left_at: Mapped[datetime | None]
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AttendanceAliasRow(Base):
    """Connection-level table: a provider email (e.g. a personal Zoom account) that stands for an LMS email."""

    __tablename__ = "attendance_aliases"
    __table_args__ = (sa.UniqueConstraint("connection_id", "provider_email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(sa.ForeignKey("connections.id", ondelete="CASCADE"))
    provider_email: Mapped[str] = mapped_column(sa.String(320), doc="normalised")
    lms_email: Mapped[str] = mapped_column(sa.String(320))
    created_at: Mapped[datetime]


class ConsoleUserRow(Base):
    """A person who signs in to the console. Passwords are argon2 hashes (people choose them, unlike LMS secrets)."""

    __tablename__ = "console_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(320), unique=True, doc="normalised; an instructor's LMS email")
    display_name: Mapped[str] = mapped_column(sa.String(200))
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    roles: Mapped[list[str]] = mapped_column(default=list)
    time_zone: Mapped[str] = mapped_column(sa.String(64), default="UTC")
    active: Mapped[bool] = mapped_column(default=True)
    # Bumped when the password changes or the user is deactivated: every signed-in browser must sign in again.
    session_version: Mapped[int] = mapped_column(default=1)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class ConsoleSignOutRow(Base):
    """A console session signed out before its cookie expires: its cookie opens nothing any more. Kept per session
    (not a bump of the user's session version) so that signing out one browser leaves the others signed in."""

    __tablename__ = "console_sign_outs"

    nonce: Mapped[str] = mapped_column(sa.String(64), primary_key=True, doc="the nonce in the session's cookie")
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("console_users.id", ondelete="CASCADE"))
    # Past this the cookie is refused for its age anyway, and the row may go.
    expires_at: Mapped[datetime] = mapped_column(index=True)


class AuditRow(Base):
    """Every change made through the console or the CLI: who, what, when, and the record before and after."""

    __tablename__ = "audit_log"
    # The log page filters by who, what and target (a connection or a part), newest first, paged by id.
    __table_args__ = (
        sa.Index("ix_audit_log_actor_id", "actor", "id"),
        sa.Index("ix_audit_log_action_id", "action", "id"),
        sa.Index("ix_audit_log_target_id", "target", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(sa.String(320), doc="console user email, or 'cli:<os user>'")
    action: Mapped[str] = mapped_column(sa.String(100))
    target: Mapped[str] = mapped_column(sa.String(300))
    before: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)


class LmsReadRow(Base):
    """One GetAttendees call of the LMS for a part: on the part's timeline with its correlation id. A read, not a
    change, so not in the audit log (where an LMS polling every few minutes would bury the changes)."""

    __tablename__ = "lms_reads"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(sa.ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(sa.String(320), doc="lms:<connection>")
    action: Mapped[str] = mapped_column(sa.String(100))
    details: Mapped[dict[str, Any]] = mapped_column(sa.JSON, doc="correlationId, attendees, state")


class AttendanceOverrideRow(Base):
    """An admin's decision for one learner of one part, with the reason; it beats the evidence."""

    __tablename__ = "attendance_overrides"

    session_id: Mapped[int] = mapped_column(sa.ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    email_key: Mapped[str] = mapped_column(sa.String(320), primary_key=True, doc="normalised email")
    email: Mapped[str] = mapped_column(sa.String(320), doc="as the LMS spells it")
    attended: Mapped[bool]
    reason: Mapped[str] = mapped_column(sa.Text)
    actor: Mapped[str] = mapped_column(sa.String(320))
    at: Mapped[datetime]
