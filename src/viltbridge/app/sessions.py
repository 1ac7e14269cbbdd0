"""Sessions (one per part): schedule (POST and PUT), cancel, keep the provider's meeting in step with the LMS
(the meeting.sync job and the nightly check), the scheduling conflicts, the extended options."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from viltbridge.app.uow import Reading, reading, unit_of_work
from viltbridge.core import jobs
from viltbridge.core.clock import Clock
from viltbridge.core.errors import DomainError, InvalidInput, NotFound, ProviderFailed
from viltbridge.core.models import Connection, JobRequest, Meeting, Session, SessionStatus
from viltbridge.core.ports import Store
from viltbridge.core.provider import (
    ExtendedOption,
    InstructorSpec,
    MeetingFacts,
    MeetingRef,
    MeetingSpec,
    Provider,
    RegistersAhead,
)
from viltbridge.core.schedule import Booking, conflicts_with, host_account_of
from viltbridge.core.times import guess_zone
from viltbridge.store import console_views, repository
from viltbridge.store.tables import ConnectionRow, SessionRow

if TYPE_CHECKING:
    from viltbridge.app.context import AppContext

log = logging.getLogger("viltbridge.services")


@dataclass(frozen=True)
class SessionInput:
    """A parsed SessionRequest: already validated for shape, normalised, in UTC."""

    external_id: str
    title: str
    description: str
    creator_email: str
    starts_at: datetime
    ends_at: datetime
    utc_offset_minutes: int
    instructor_emails: list[str] | None = None  # None: not sent, keep; []: sent empty, clear
    lo_id: str | None = None  # None: not sent, keep; "": sent empty, clear
    extended_options: dict[str, Any] | None = None


def _validated_extended_options(
    provider: Provider, connection: Connection, requested: dict[str, Any] | None
) -> dict[str, Any] | None:
    if requested is None:
        return None
    if requested and not connection.options.extended_options:
        raise InvalidInput(
            "ExtendedOptions were sent but extended options are turned off for this integration; "
            "turn them on in the connector (vendor option) or leave them out."
        )
    known = {option.id for option in provider.extended_options()}
    unknown = sorted(set(requested) - known)
    if unknown:
        listed = ", ".join(sorted(known)) or "none"
        raise InvalidInput(
            f"ExtendedOptions {', '.join(unknown)} are not options of the {provider.kind} provider; "
            f"known options: {listed}."
        )
    return requested


async def _instructor_spec(store: Store, connection_id: int, email: str) -> InstructorSpec:
    known = await store.find_instructor(connection_id, email)
    if known is None:
        return InstructorSpec(email=email, first_name="", last_name="")
    return InstructorSpec(email=known.email, first_name=known.first_name, last_name=known.last_name,
                          active=known.active, provider_user_id=known.provider_user_id)


async def meeting_spec(store: Store, session: Session) -> MeetingSpec:
    hosts = [await _instructor_spec(store, session.connection_id, email) for email in session.instructor_emails]
    return MeetingSpec(
        session_key=f"{session.connection_id}:{session.external_id}",
        title=session.title,
        description=session.description,
        starts_at=session.starts_at,
        ends_at=session.ends_at,
        zone=session.zone,
        utc_offset_minutes=session.utc_offset_minutes,
        host=hosts[0] if hosts else None,
        co_hosts=tuple(hosts[1:]),
        extended_options=session.extended_options,
    )


def meeting_ref(meeting: Meeting) -> MeetingRef:
    return MeetingRef(meeting_id=meeting.meeting_id, join_url=meeting.join_url, host_url=meeting.host_url,
                      data=meeting.data)


def _meeting(provider: Provider, ref: MeetingRef) -> Meeting:
    return Meeting(provider=provider.kind, meeting_id=ref.meeting_id, join_url=ref.join_url,
                   host_url=ref.host_url, data=dict(ref.data))


async def schedule_session(
    store: Store, provider: Provider, connection: Connection, request: SessionInput, clock: Clock
) -> tuple[Session, bool]:
    """Create or update the session for `request.external_id`; returns (session, created).

    Used by both POST and PUT: a duplicate POST updates, a PUT for an unknown id creates.
    The provider meeting is updated in place so every launch link keeps working.
    """
    if request.ends_at <= request.starts_at:
        raise InvalidInput(
            f"DateEnd ({request.ends_at:%Y-%m-%dT%H:%M:%S}) must be after DateBegin "
            f"({request.starts_at:%Y-%m-%dT%H:%M:%S}); both are UTC. Correct the session's times and save again."
        )
    extended = _validated_extended_options(provider, connection, request.extended_options)
    now = clock.now()
    await store.lock(f"session:{connection.id}:{request.external_id}")
    existing = await store.find_session(connection.id, request.external_id)
    zone = guess_zone(request.utc_offset_minutes, request.starts_at)
    session = existing or Session(
        connection_id=connection.id, external_id=request.external_id, title="", description="",
        creator_email="", starts_at=request.starts_at, ends_at=request.ends_at, utc_offset_minutes=0,
        zone=zone, instructor_emails=[], created_at=now,
    )
    session.title = request.title
    session.description = request.description
    session.creator_email = request.creator_email
    session.starts_at, session.ends_at = request.starts_at, request.ends_at
    session.utc_offset_minutes, session.zone = request.utc_offset_minutes, zone
    # Left out = unchanged (older payloads lack these fields); sent empty = cleared.
    if request.instructor_emails is not None:
        session.instructor_emails = list(request.instructor_emails)
    if request.lo_id is not None:
        session.lo_id = request.lo_id or None
    if extended is not None:
        session.extended_options = extended
    session.updated_at = now
    if existing is not None:
        session.edits += 1
    session.status, session.cancelled_at = SessionStatus.SCHEDULED, None
    retry_after: timedelta | None = None
    try:
        await _bring_meeting_up_to_date(store, provider, session)
    except ProviderFailed as err:
        if not err.transient:
            raise  # the provider refused the session as it is: nothing is saved, the message says what to fix
        # The provider is down: keep the LMS's change and owe the provider its part (a job retries it).
        session.meeting_pending = "update" if session.meeting and not session.meeting.cancelled else "create"
        session.meeting_error = err.message
        retry_after = timedelta(seconds=err.retry_after_seconds) if err.retry_after_seconds else None
        log.warning("session %s saved; %s of its meeting owed to %s: %s", request.external_id,
                    session.meeting_pending, provider.kind, err.message)
    saved = await store.save_session(session)
    assert saved.id is not None
    if saved.meeting_pending:
        await store.enqueue_job(meeting_sync_job(saved, now, retry_after))
    await store.enqueue_job(jobs.session_job(jobs.ATTENDANCE_COLLECT, saved.id, saved.connection_id,
                                             saved.ends_at + ATTENDANCE_FIRST_LOOK))
    if saved.lo_id is not None and isinstance(provider, RegistersAhead):
        # Learners who launched other parts get this part's link ahead of their click, and this part's learners
        # the later parts' (`app.registrations`).
        for part in [saved, *await store.other_parts(saved)]:
            assert part.id is not None
            await store.enqueue_job(jobs.session_job(jobs.LEARNERS_REGISTER, part.id, part.connection_id, now))
    return saved, existing is None


ATTENDANCE_FIRST_LOOK = timedelta(minutes=5)  # after a part ends, when its attendance is first collected


async def scheduling_conflicts(store: Store, connection: Connection, session: Session) -> list[str]:
    """What the part collides with: the same instructor (or provider host account) booked at an overlapping
    time, in any connection. Said to the LMS and shown in the console; the part is saved regardless."""
    if session.status is SessionStatus.CANCELLED:
        return []
    meeting = session.meeting
    target = Booking(connection.name, session.external_id, session.title, session.starts_at, session.ends_at,
                     tuple(session.instructor_emails),
                     host_account_of(meeting.provider, meeting.data) if meeting is not None else None)
    others = [b for b in await store.bookings_between(session.starts_at, session.ends_at)
              if (b.connection, b.session_id) != (target.connection, target.session_id)]
    return [conflict.describe() for conflict in conflicts_with(target, others)]


def meeting_sync_job(session: Session, now: datetime, retry_after: timedelta | None = None) -> JobRequest:
    """The job that does the provider work a save left owed (`meeting_pending`)."""
    assert session.id is not None
    return jobs.session_job(jobs.MEETING_SYNC, session.id, session.connection_id,
                            now + (timedelta(seconds=30) if retry_after is None else retry_after))


async def _bring_meeting_up_to_date(store: Store, provider: Provider, session: Session) -> None:
    """Create or update the provider meeting to match the session; clears what was owed."""
    spec = await meeting_spec(store, session)
    if session.meeting_pending == "create":
        spec = replace(spec, may_exist=True)  # an earlier attempt's answer may have been lost
    if session.meeting is not None and not session.meeting.cancelled:
        # Also when reinstating a session whose meeting was left in place (automatic cancellation off).
        session.meeting = _meeting(provider, await provider.update_meeting(meeting_ref(session.meeting), spec))
    else:
        # New, or reinstated after a cancellation that reached the provider: that meeting is gone.
        session.meeting = _meeting(provider, await provider.create_meeting(spec))
    session.meeting_pending = session.meeting_error = None


def meeting_drift(session: Session, facts: MeetingFacts, max_title: int | None) -> list[str]:
    """How the provider's meeting differs from the session (what someone changed at the provider), in words."""
    drift = []
    title = session.title[:max_title] if max_title else session.title
    if facts.title is not None and facts.title.strip() != title.strip():
        drift.append(f"title '{facts.title}' instead of '{title}'")
    if facts.starts_at is not None and abs(facts.starts_at - session.starts_at) >= timedelta(minutes=1):
        drift.append(f"start {facts.starts_at:%Y-%m-%d %H:%M} UTC instead of {session.starts_at:%Y-%m-%d %H:%M} UTC")
    if facts.ends_at is not None and abs(facts.ends_at - session.ends_at) >= timedelta(minutes=1):
        drift.append(f"end {facts.ends_at:%Y-%m-%d %H:%M} UTC instead of {session.ends_at:%Y-%m-%d %H:%M} UTC")
    return drift


async def check_meeting(store: Store, provider: Provider, session_id: int, now: datetime) -> str:
    """Nightly reconciliation of one upcoming part: a meeting deleted at the provider is created again, one changed
    there is put back to what the LMS scheduled (the LMS is the source of truth). Returns what it found."""
    session = await store.get_session(session_id)
    if (session is None or session.status is not SessionStatus.SCHEDULED or session.meeting is None
            or session.meeting.cancelled or session.meeting_pending is not None):
        return "nothing to check"
    facts = await provider.meeting_facts(meeting_ref(session.meeting))
    if facts is None:
        session.meeting.cancelled = True
        session.meeting_pending = "create"
        session.meeting_error = f"the meeting was deleted at {provider.kind}; viltbridge creates it again"
    else:
        drift = meeting_drift(session, facts, provider.capabilities.max_title_length)
        if not drift:
            return "in step"
        session.meeting_pending = "update"
        session.meeting_error = f"changed at {provider.kind} ({'; '.join(drift)}); viltbridge puts it back"
    log.warning("session %s: %s", session.external_id, session.meeting_error)
    saved = await store.save_session(session)
    await store.enqueue_job(meeting_sync_job(saved, now, timedelta(0)))
    return str(session.meeting_error)


async def sync_meeting(store: Store, provider: Provider, session_id: int) -> str:
    """Do the provider work a save left owed, if any is still owed (the meeting.sync job); returns what it did.
    Raises ProviderFailed when the provider still fails (transient: the job retries)."""
    found = await store.get_session(session_id)
    if found is None:
        return "session gone; nothing to do"
    await store.lock(f"session:{found.connection_id}:{found.external_id}")
    session = await store.get_session(session_id)  # as it is now that no one else is changing it
    if session is None or session.meeting_pending is None:
        return "nothing owed"
    owed = session.meeting_pending
    try:
        if owed == "cancel":
            if session.meeting is not None and not session.meeting.cancelled:
                await provider.cancel_meeting(meeting_ref(session.meeting))
                session.meeting.cancelled = True
            session.meeting_pending = session.meeting_error = None
        else:
            await _bring_meeting_up_to_date(store, provider, session)
    except DomainError as err:
        if isinstance(err, ProviderFailed) and err.transient:
            raise
        session.meeting_error = err.message  # kept for the console; the job ends dead with the same reason
        await store.save_session(session)
        raise
    await store.save_session(session)
    meeting = session.meeting.meeting_id if session.meeting else "-"
    return f"{owed} done at {provider.kind} (meeting {meeting})"


async def cancel_session(
    store: Store, provider: Provider, connection: Connection, external_id: str, clock: Clock
) -> Session | None:
    """Cancel one part. Unknown or already cancelled sessions succeed without change (DELETE is idempotent)."""
    await store.lock(f"session:{connection.id}:{external_id}")
    session = await store.find_session(connection.id, external_id)
    if session is None or session.status is SessionStatus.CANCELLED:
        return session
    if session.meeting is None and session.meeting_pending == "create":
        session.meeting_pending = session.meeting_error = None  # never created: nothing to cancel
    elif session.meeting is not None and connection.options.automatic_cancellation:
        try:
            await provider.cancel_meeting(meeting_ref(session.meeting))
            session.meeting.cancelled = True
            session.meeting_pending = session.meeting_error = None
        except ProviderFailed as err:
            if not err.transient:
                raise
            session.meeting_pending, session.meeting_error = "cancel", err.message
    elif session.meeting is not None:
        session.meeting_pending = session.meeting_error = None  # an owed update is moot now
        log.info("session %s cancelled in the LMS; meeting left in place because automatic cancellation is off",
                 external_id)
    session.status, session.cancelled_at, session.updated_at = SessionStatus.CANCELLED, clock.now(), clock.now()
    session.edits += 1
    saved = await store.save_session(session)
    if saved.meeting_pending:
        await store.enqueue_job(meeting_sync_job(saved, clock.now()))
    return saved


async def require_session(store: Store, connection: Connection, external_id: str) -> Session:
    return known_session(await store.find_session(connection.id, external_id), external_id)


def known_session(session: Session | None, external_id: str) -> Session:
    """`session`, or NotFound saying the LMS must save session `external_id` again."""
    if session is None:
        raise NotFound(
            f"Session {external_id} is not known to this integration. Save the session in the learning system "
            "again so it is sent to the meeting provider, then retry."
        )
    return session


class SessionCancelled(InvalidInput):
    """The session was cancelled: nothing more happens with it until the LMS saves it again."""


def require_scheduled(session: Session, action: str) -> None:
    if session.status is SessionStatus.CANCELLED:
        when = f" on {session.cancelled_at:%Y-%m-%d %H:%M} UTC" if session.cancelled_at else ""
        raise SessionCancelled(f"Session '{session.title}' was cancelled{when}, so there is nothing to {action}.")


async def extended_options(
    store: Store, provider: Provider, connection: Connection, external_id: str
) -> tuple[list[ExtendedOption], dict[str, Any]]:
    """The provider's options and the values chosen for this session (defaults for a session not yet saved)."""
    session = await store.find_session(connection.id, external_id)
    chosen = dict(session.extended_options) if session else {}
    return list(provider.extended_options()), chosen


# --- The LMS's calls, each in its own unit of work ---------------------------------------------------------------


@dataclass(frozen=True)
class SavedSession:
    """What saving a part did: the part, whether it is new, what it collides with, and the provider work still
    owed (said to the LMS: it is retried)."""

    session: Session
    created: bool
    conflicts: list[str]
    owed: str | None

    def message(self) -> str | None:
        said = [text for text in (self.owed, *(f"Saved, but note: {conflict}." for conflict in self.conflicts[:3]))
                if text]
        return " ".join(said) or None


def owed_message(session: Session, provider: str) -> str | None:
    """Said when the LMS's change is saved but the provider could not take it yet (it is retried)."""
    if session.meeting_pending is None:
        return None
    work = {"create": "The meeting will be created", "update": "The meeting will be updated",
            "cancel": "The meeting will be cancelled"}[session.meeting_pending]
    return (f"Saved. {provider} is not answering right now ({session.meeting_error}). {work} as soon as it is "
            "back; viltbridge retries automatically, nothing to do.")


async def save(ctx: AppContext, connection: Connection, request: SessionInput) -> SavedSession:
    """CreateSession and UpdateSession: the part saved and audited, its jobs handed on once committed, then its
    conflicts read (outside the write, which must stay short)."""
    provider = ctx.providers.for_connection(connection)
    async with unit_of_work(ctx) as work:
        session, created = await schedule_session(work.store, provider, connection, request, ctx.clock)
        await work.audit_lms_call(connection, "lms.session.create" if created else "lms.session.update",
                                  request.external_id,
                                  {"title": session.title, "starts_at": session.starts_at.isoformat(),
                                   "ends_at": session.ends_at.isoformat(), "instructors": session.instructor_emails,
                                   "meeting": session.meeting.meeting_id if session.meeting else None,
                                   "provider_work_owed": session.meeting_pending})
    async with reading(ctx) as read:
        conflicts = await scheduling_conflicts(read.store, connection, session)
    return SavedSession(session, created, conflicts, owed_message(session, provider.kind))


async def cancel(ctx: AppContext, connection: Connection, external_id: str) -> tuple[Session | None, str | None]:
    """CancelSession: the cancelled part (None: unknown, nothing to do) and what to say of provider work owed."""
    provider = ctx.providers.for_connection(connection)
    async with unit_of_work(ctx) as work:
        cancelled = await cancel_session(work.store, provider, connection, external_id, ctx.clock)
        if cancelled is not None:
            await work.audit_lms_call(connection, "lms.session.cancel", cancelled.external_id,
                                      {"status": cancelled.status.value})
    return cancelled, owed_message(cancelled, provider.kind) if cancelled is not None else None


async def named_part(work: Reading, connection: str, external_id: str) -> tuple[ConnectionRow, SessionRow]:
    """A part as the console names it (connection name, LMS session id), or NotFound."""
    found = await work.db.run_sync(console_views.session, connection, external_id)
    if found is None:
        raise NotFound(f"Connection '{connection}' has no session '{external_id}'.")
    return found


async def cancel_from_console(ctx: AppContext, connection: str, external_id: str, *, actor: str) -> None:
    """As the LMS's DELETE, by a console user: the provider meeting goes too (if the connection cancels
    automatically); audited under the person's name."""
    async with unit_of_work(ctx) as work:
        conn_row, _ = await named_part(work, connection, external_id)
        lms_connection = repository.connection_from_row(conn_row, ctx.keyring)
        await cancel_session(work.store, ctx.providers.for_connection(lms_connection), lms_connection, external_id,
                             ctx.clock)
        await work.audit(actor, "session.cancel", f"session:{connection}/{external_id}")


async def options(ctx: AppContext, connection: Connection,
                  external_id: str) -> tuple[str, list[ExtendedOption], dict[str, Any]]:
    """GetExtendedOptions: the provider's kind, its options, and the part's choices."""
    provider = ctx.providers.for_connection(connection)
    async with reading(ctx) as read:
        offered, chosen = await extended_options(read.store, provider, connection, external_id)
    return provider.kind, offered, chosen

