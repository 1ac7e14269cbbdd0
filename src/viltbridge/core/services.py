"""The use cases behind the LMS contract: instructors, sessions (per part), launches and attendance.

Each function takes the store, the connection's provider and a clock; none knows HTTP or SQL. Semantics follow
`cornerstone-vilt-contract.md` §5: every write is idempotent (a duplicate POST updates, a PUT of an unknown
session creates, a second DELETE succeeds), meetings are updated in place, launches resolve at click time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from viltbridge.core.attendance import (
    PERSONAL_ID,
    AttendanceDecision,
    AttendancePolicy,
    Interval,
    LaunchIdentity,
    LedgerSegment,
    Review,
    apply_overrides,
    choose_evidence,
    decide_from_launches,
    decide_from_segments,
    identify_segments,
    launch_only_state,
    merge_into_ledger,
)
from viltbridge.core.clock import Clock
from viltbridge.core.emails import checked_email, normalize_email
from viltbridge.core.errors import DomainError, Forbidden, InvalidInput, NotFound, NotReady, ProviderFailed
from viltbridge.core.launch_tokens import LaunchClaims, sign_launch, verify_launch
from viltbridge.core.models import (
    AttendanceState,
    Connection,
    Instructor,
    JobRequest,
    Launch,
    Meeting,
    Role,
    Session,
    SessionStatus,
)
from viltbridge.core.ports import Store
from viltbridge.core.provider import (
    AttendanceSource,
    ExtendedOption,
    InstructorSpec,
    LaunchLink,
    MeetingFacts,
    MeetingRef,
    MeetingSpec,
    Person,
    Provider,
)
from viltbridge.core.redaction import redact
from viltbridge.core.schedule import Booking, conflicts_with, host_account_of
from viltbridge.core.times import guess_zone

log = logging.getLogger("viltbridge.services")

# Bounds for "every launch of a session" (dates outside these are refused at the door, see core.times).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2201, 1, 1, tzinfo=UTC)

# With no participant at all this long after the end, the class did not take place: attendance is final, empty.
NO_SHOW_AFTER = timedelta(hours=2)

# People run over; a launch link keeps working this long after the scheduled end.
LAUNCH_GRACE_AFTER_END = timedelta(minutes=60)


@dataclass(frozen=True)
class LaunchSettings:
    public_url: str
    keys: list[bytes]
    max_age: timedelta = timedelta(minutes=15)


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


@dataclass(frozen=True)
class AttendanceResult:
    emails: list[str]
    state: AttendanceState
    decisions: list[AttendanceDecision]
    source: AttendanceSource
    session_id: int
    state_changed: bool
    segments: list[LedgerSegment] = field(default_factory=list)  # new evidence for the ledger
    reviews: list[Review] = field(default_factory=list)  # segments no rule could credit


# --- instructors -------------------------------------------------------------------------------------------


async def add_instructor(
    store: Store, provider: Provider, connection: Connection, email: str, first_name: str, last_name: str
) -> Instructor:
    """Provision at the provider and record; adding a known email updates it (the LMS may retry)."""
    email = checked_email(email, field="Email")
    return await update_instructor(store, provider, connection, email, email, first_name, last_name, True)


async def update_instructor(
    store: Store,
    provider: Provider,
    connection: Connection,
    old_email: str,
    new_email: str,
    first_name: str,
    last_name: str,
    is_active: bool | None,
) -> Instructor:
    old_email = checked_email(old_email, field="OldEmail")
    new_email = checked_email(new_email, field="NewEmail")
    for email in sorted({old_email, new_email}):  # sorted: two renames in opposite directions cannot deadlock
        await store.lock(f"instructor:{connection.id}:{email}")
    current = await store.find_instructor(connection.id, old_email)
    if old_email != new_email:
        taken = await store.find_instructor(connection.id, new_email)
        if taken is not None and current is not None:
            raise InvalidInput(
                f"NewEmail {new_email} already belongs to another instructor of this integration; "
                "pick a different email or deactivate that instructor first."
            )
        current = current or taken
    active = current.active if (current is not None and is_active is None) else (is_active is not False)
    spec = InstructorSpec(email=new_email, first_name=first_name, last_name=last_name, active=active,
                          provider_user_id=current.provider_user_id if current else None)
    # An update for an instructor we never saw creates it: a lost AddInstructor must not strand them.
    provisioned = await (
        provider.update_instructor(old_email, spec) if current else provider.provision_instructor(spec)
    )
    instructor = current or Instructor(connection_id=connection.id, email=new_email, first_name=first_name,
                                       last_name=last_name)
    instructor.email, instructor.first_name, instructor.last_name = new_email, first_name, last_name
    instructor.active = active
    instructor.provider_user_id = provisioned.provider_user_id
    instructor.provider_data = provisioned.data
    saved = await store.save_instructor(instructor)
    if old_email != new_email:
        await store.rename_session_instructor(connection.id, old_email, new_email)
    return saved


# --- sessions ----------------------------------------------------------------------------------------------


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


async def _meeting_spec(store: Store, session: Session) -> MeetingSpec:
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


def _meeting_ref(meeting: Meeting) -> MeetingRef:
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
    await store.enqueue_job(JobRequest(
        "attendance.collect", f"attendance.collect:{saved.id}", {"session_id": saved.id},
        run_after=saved.ends_at + ATTENDANCE_FIRST_LOOK, connection_id=saved.connection_id, session_id=saved.id))
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
    return JobRequest("meeting.sync", f"meeting.sync:{session.id}", {"session_id": session.id},
                      run_after=now + (timedelta(seconds=30) if retry_after is None else retry_after),
                      connection_id=session.connection_id,
                      session_id=session.id)


async def _bring_meeting_up_to_date(store: Store, provider: Provider, session: Session) -> None:
    """Create or update the provider meeting to match the session; clears what was owed."""
    spec = await _meeting_spec(store, session)
    if session.meeting_pending == "create":
        spec = replace(spec, may_exist=True)  # an earlier attempt's answer may have been lost
    if session.meeting is not None and not session.meeting.cancelled:
        # Also when reinstating a session whose meeting was left in place (automatic cancellation off).
        session.meeting = _meeting(provider, await provider.update_meeting(_meeting_ref(session.meeting), spec))
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
    facts = await provider.meeting_facts(_meeting_ref(session.meeting))
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
                await provider.cancel_meeting(_meeting_ref(session.meeting))
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
            await provider.cancel_meeting(_meeting_ref(session.meeting))
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
    saved = await store.save_session(session)
    if saved.meeting_pending:
        await store.enqueue_job(meeting_sync_job(saved, clock.now()))
    return saved


async def _require_session(store: Store, connection: Connection, external_id: str) -> Session:
    session = await store.find_session(connection.id, external_id)
    if session is None:
        raise NotFound(
            f"Session {external_id} is not known to this integration. Save the session in the learning system "
            "again so it is sent to the meeting provider, then retry."
        )
    return session


class SessionCancelled(InvalidInput):
    """The session was cancelled: nothing more happens with it until the LMS saves it again."""


def _require_scheduled(session: Session, action: str) -> None:
    if session.status is SessionStatus.CANCELLED:
        when = f" on {session.cancelled_at:%Y-%m-%d %H:%M} UTC" if session.cancelled_at else ""
        raise SessionCancelled(f"Session '{session.title}' was cancelled{when}, so there is nothing to {action}.")


# --- launches ----------------------------------------------------------------------------------------------


async def _role_of(store: Store, session: Session, email: str) -> Role:
    if session.instructor_emails:
        if email == session.instructor_emails[0]:
            return Role.HOST
        if email in session.instructor_emails:
            return Role.COHOST
        return Role.ATTENDEE
    # The contract's SessionRequest names no instructor; without InstructorEmails, the integration's
    # active instructors host.
    return Role.HOST if await store.is_active_instructor(session.connection_id, email) else Role.ATTENDEE


async def launch_url(
    store: Store, connection: Connection, external_id: str, email: str, settings: LaunchSettings, clock: Clock
) -> str:
    """The joinUrl for one person: our signed redirect, resolved to the provider's link (and the person's role)
    at click time. Reads only, so the endpoint the LMS calls on every click stays cheap."""
    session = await _require_session(store, connection, external_id)
    _require_scheduled(session, "join")
    assert session.id is not None
    claims = LaunchClaims(connection_id=connection.id, session_id=session.id, email=email, issued_at=clock.now())
    return f"{settings.public_url.rstrip('/')}/l/{sign_launch(claims, settings.keys[0])}"


def read_launch_token(token: str, settings: LaunchSettings, clock: Clock) -> LaunchClaims:
    return verify_launch(token, settings.keys, now=clock.now(), max_age=settings.max_age)


class LaunchNotOpen(Forbidden):
    """The link is valid but the class is not open for joining now."""


class LaunchNotOpenYet(LaunchNotOpen):
    """Before the launch window opens."""


class LaunchEnded(LaunchNotOpen):
    """Past the end and the grace period that follows it."""


class IntegrationSwitchedOff(Forbidden):
    """The class's connection is deactivated: no launch goes through until an administrator activates it."""


def _opens_at(session: Session, connection: Connection) -> datetime:
    """When the class opens for joining: the connection's launch window before the start."""
    return session.starts_at - timedelta(minutes=connection.options.launch_window_minutes)


@dataclass(frozen=True)
class LaunchPlan:
    """What a click on `/l/<token>` resolves to, read from the store: who, where, in which role."""

    session: Session
    email: str  # normalised
    lms_email: str  # as the LMS spelled it
    role: Role
    previous: LaunchLink | None
    # An instructor's name as the LMS sent it (POST /instructor), for providers that show a name we choose.
    # Learners have none: Cornerstone's launch carries only the email, so they appear under it.
    first_name: str | None = None
    last_name: str | None = None


async def plan_launch(store: Store, connection: Connection, claims: LaunchClaims, clock: Clock) -> LaunchPlan:
    """Check the click may go ahead now, and gather what the provider needs. Reads only."""
    if not connection.active:
        raise IntegrationSwitchedOff("This class's online meeting integration has been switched off. Contact your "
                                     "administrator.")
    session = await store.get_session(claims.session_id)
    if session is None or session.connection_id != connection.id or session.meeting is None:
        raise NotFound("This class no longer exists. Go back to your learning system for its current details.")
    _require_scheduled(session, "join")
    now = clock.now()
    opens_at = _opens_at(session, connection)
    if now < opens_at:
        raise LaunchNotOpenYet(
            f"'{session.title}' opens for joining at {opens_at:%Y-%m-%d %H:%M} UTC "
            f"({connection.options.launch_window_minutes} minutes before it starts). Come back then."
        )
    if now > session.ends_at + LAUNCH_GRACE_AFTER_END:
        raise LaunchEnded(f"'{session.title}' ended at {session.ends_at:%Y-%m-%d %H:%M} UTC.")
    assert session.id is not None
    # The role is decided now, from the session as it is now: an edit to the instructors applies at once.
    email = normalize_email(claims.email)
    role = await _role_of(store, session, email)
    last = await store.last_personal_launch(session.id, email)
    previous = LaunchLink(url=last.provider_url, personal=True, identity=last.identity) if last else None
    instructor = await store.find_instructor(connection.id, email) if role is not Role.ATTENDEE else None
    return LaunchPlan(session=session, email=email, lms_email=claims.email, role=role, previous=previous,
                      first_name=instructor.first_name if instructor else None,
                      last_name=instructor.last_name if instructor else None)


async def resolve_launch(provider: Provider, plan: LaunchPlan) -> LaunchLink:
    """The provider's link for this person now. Called outside any database transaction: it may take seconds."""
    assert plan.session.meeting is not None
    person = Person(email=plan.lms_email, first_name=plan.first_name, last_name=plan.last_name)
    return await provider.launch_link(_meeting_ref(plan.session.meeting), person, plan.role, plan.previous)


async def record_launch(
    store: Store, plan: LaunchPlan, link: LaunchLink, clock: Clock, user_agent: str | None = None
) -> None:
    assert plan.session.id is not None
    # Only personal links are kept whole (they are reused on the next click); others are kept redacted.
    stored_url = link.url if link.personal else redact(link.url)
    # Why a weaker link was handed out goes into the ledger with the click, not only into the log.
    identity = {**link.identity, "note": link.note} if link.note else dict(link.identity)
    await store.record_launch(Launch(session_id=plan.session.id, email=plan.email, lms_email=plan.lms_email,
                                     role=plan.role, clicked_at=clock.now(), provider_url=stored_url,
                                     personal=link.personal, user_agent=user_agent, identity=identity))


# --- attendance --------------------------------------------------------------------------------------------


def attendance_policy(connection: Connection, session: Session) -> AttendancePolicy:
    """The connection's policy with the session's overrides (both validated when they were set)."""
    return AttendancePolicy.from_settings(connection.attendance_policy).with_overrides(session.attendance_policy)


async def attendance(
    store: Store, provider: Provider, connection: Connection, external_id: str, clock: Clock
) -> AttendanceResult:
    """The LMS emails of people who attended, by the best evidence this provider gives, with every decision
    explained. Reads only (the provider may take a while to answer): the caller keeps the new segments, decisions
    and state with `save_attendance`. Once a part is final the ledger is the answer: no provider call, and a policy
    change is applied to the evidence already kept."""
    session = await _require_session(store, connection, external_id)
    _require_scheduled(session, "report attendance for")
    assert session.id is not None
    now = clock.now()
    opens_at = _opens_at(session, connection)
    source = provider.capabilities.attendance
    fresh: list[LedgerSegment] = []
    reviews: list[Review] = []
    if source is AttendanceSource.LAUNCH_ONLY:
        launches = await store.launches_between(session.id, opens_at, session.ends_at)
        decisions = decide_from_launches(launches, opens_at=opens_at, ends_at=session.ends_at)
        state = launch_only_state(now, session.ends_at)
        if not decisions and state is not AttendanceState.FINAL:
            wait = max(60, int((session.ends_at - now).total_seconds()))
            raise NotReady(
                f"No one has joined '{session.title}' yet and it ends at {session.ends_at:%Y-%m-%d %H:%M} UTC; "
                "get attendance again after it ends.",
                retry_after_seconds=wait,
            )
    else:
        fresh, decisions, reviews, state = await _attendance_from_ledger(store, provider, connection, session, now)
    decisions = apply_overrides(decisions, await store.attendance_overrides(session.id))  # an admin's word wins
    return AttendanceResult(emails=[d.email for d in decisions if d.attended], state=state, decisions=decisions,
                            source=source, session_id=session.id, state_changed=session.attendance_state is not state,
                            segments=fresh, reviews=reviews)


async def save_attendance(store: Store, result: AttendanceResult, now: datetime) -> None:
    """Keep what `attendance` learned: new segments in the ledger, the decisions and review rows, the state."""
    if result.segments:
        await store.save_attendance_segments(result.session_id, result.segments, now)
    await store.save_attendance_results(result.session_id, result.decisions, result.reviews, result.state.value, now)
    if result.state_changed:
        await store.set_attendance_state(result.session_id, result.state)


async def _attendance_from_ledger(
    store: Store, provider: Provider, connection: Connection, session: Session, now: datetime
) -> tuple[list[LedgerSegment], list[AttendanceDecision], list[Review], AttendanceState]:
    """Segments from the provider's report and its live events, added to the ledger, tied to launched learners by
    identity, judged by the connection's (and session's) policy.

    Final once the part has ended and the provider says its report is complete; a class that never took place is
    final (and empty) once the provider has had `NO_SHOW_AFTER` to report it.
    """
    assert session.id is not None
    if session.meeting is None:  # its creation is still owed to the provider (it was down when the LMS saved)
        if now > session.ends_at + NO_SHOW_AFTER:
            return [], [], [], AttendanceState.FINAL  # no meeting ever existed, so no one attended in one
        raise NotReady(
            f"The {provider.kind} meeting for '{session.title}' has not been created yet "
            f"({session.meeting_error or 'its creation is queued'}), so there is no attendance to get; "
            "get attendance again in 15 minutes.",
            retry_after_seconds=900,
        )
    stored = await store.attendance_segments(session.id)
    fresh: list[LedgerSegment] = []
    complete = session.attendance_state is AttendanceState.FINAL
    retry_after = None
    if not complete:
        report = await provider.collect_attendance(_meeting_ref(session.meeting), await _meeting_spec(store, session))
        complete, retry_after = report.complete, report.retry_after_seconds
        fresh += [LedgerSegment("report", segment) for segment in report.segments]
    if provider.capabilities.webhooks:  # kept events cost no provider call: late ones join the ledger too
        events = await store.provider_events(session.connection_id, session.meeting.meeting_id)
        fresh += [LedgerSegment("webhook", segment) for segment in provider.segments_from_events(events)]
    evidence = choose_evidence(merge_into_ledger(stored, fresh))
    if not evidence and now > session.ends_at + NO_SHOW_AFTER:
        return fresh, [], [], AttendanceState.FINAL
    if not evidence and not complete:
        wait = retry_after or 900
        raise NotReady(
            f"The {provider.kind} provider has no attendance for '{session.title}' yet (it ends at "
            f"{session.ends_at:%Y-%m-%d %H:%M} UTC); get attendance again in {max(1, wait // 60)} minutes.",
            retry_after_seconds=wait,
        )
    launches = await store.launches_between(session.id, EARLIEST, LATEST)
    found = identify_segments(evidence, _launch_identities(launches), session.ends_at,
                              aliases=await store.attendance_aliases(session.connection_id),
                              hosts=session.instructor_emails)
    instructors = set(session.instructor_emails)
    reviews = [Review("ambiguous", item.reason, item.segment) for item in found.ambiguous]
    reviews += [Review("unmatched", "no launch link, registrant, name tag, known email or alias ties this "
                                    "participant to a learner", segment)
                for segment in found.unmatched
                if not (segment.email and normalize_email(segment.email) in instructors)]
    decisions = decide_from_segments(found.matched, starts_at=session.starts_at, ends_at=session.ends_at,
                                     policy=attendance_policy(connection, session))
    for decision in decisions:
        log.info("attendance for %s: %s: %s", session.external_id, decision.email, decision.explanation)
    if reviews:
        log.info("attendance for %s: %d segment(s) to review (ambiguous or unmatched)", session.external_id,
                 len(reviews))
    final = complete and now > session.ends_at
    return fresh, decisions, reviews, AttendanceState.FINAL if final else AttendanceState.PROVISIONAL


async def matched_intervals(store: Store, session: Session) -> dict[str, list[Interval]]:
    """Per learner (the LMS's spelling), the time the ledger ties to them by the identity rules, as it stands: no
    provider call (the console's attendance chart)."""
    assert session.id is not None
    evidence = choose_evidence(await store.attendance_segments(session.id))
    launches = await store.launches_between(session.id, EARLIEST, LATEST)
    found = identify_segments(evidence, _launch_identities(launches), session.ends_at,
                              aliases=await store.attendance_aliases(session.connection_id),
                              hosts=session.instructor_emails)
    by_learner: dict[str, list[Interval]] = {}
    for item in found.matched:
        by_learner.setdefault(item.email, []).append(item.interval)
    return {email: sorted(intervals, key=lambda interval: interval.start) for email, intervals in by_learner.items()}


def _launch_identities(launches: list[Launch]) -> dict[str, LaunchIdentity]:
    """Per learner (normalised email): the spelling the LMS used last and every identity their links carried."""
    spelling: dict[str, str] = {}
    personal_ids: dict[str, set[str]] = {}
    tags: dict[str, set[str]] = {}
    for launch in launches:
        if launch.role is not Role.ATTENDEE:
            continue
        spelling[launch.email] = launch.lms_email
        if personal_id := launch.identity.get(PERSONAL_ID):
            personal_ids.setdefault(launch.email, set()).add(str(personal_id))
        if tag := launch.identity.get("display_name_tag"):
            tags.setdefault(launch.email, set()).add(str(tag))
    return {
        email: LaunchIdentity(lms_email=lms_email, personal_ids=frozenset(personal_ids.get(email, ())),
                              name_tags=frozenset(tags.get(email, ())))
        for email, lms_email in spelling.items()
    }


# --- extended options --------------------------------------------------------------------------------------


async def extended_options(
    store: Store, provider: Provider, connection: Connection, external_id: str
) -> tuple[list[ExtendedOption], dict[str, Any]]:
    """The provider's options and the values chosen for this session (defaults for a session not yet saved)."""
    session = await store.find_session(connection.id, external_id)
    chosen = dict(session.extended_options) if session else {}
    return list(provider.extended_options()), chosen
