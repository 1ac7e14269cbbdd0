"""Launches: the joinUrl the LMS hands out, and what a click on it resolves to at click time."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from viltbridge import metrics
from viltbridge.app.sessions import known_session, meeting_ref, require_scheduled
from viltbridge.app.uow import Reading, reading, unit_of_work
from viltbridge.core.clock import Clock
from viltbridge.core.emails import normalize_email
from viltbridge.core.errors import DomainError, Forbidden, NotFound
from viltbridge.core.launch_tokens import LaunchClaims, sign_launch, verify_launch
from viltbridge.core.models import Connection, Launch, Role, Session
from viltbridge.core.ports import Store
from viltbridge.core.provider import LaunchLink, Person, Provider, RegistersAhead
from viltbridge.core.redaction import redact
from viltbridge.store import console_views, repository

if TYPE_CHECKING:
    from viltbridge.app.context import AppContext

log = logging.getLogger("viltbridge.launch")

# People run over; a launch link keeps working this long after the scheduled end.
LAUNCH_GRACE_AFTER_END = timedelta(minutes=60)


@dataclass(frozen=True)
class LaunchSettings:
    public_url: str
    keys: list[bytes]
    max_age: timedelta = timedelta(minutes=15)


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


async def launch_url(read: Reading, connection: Connection, external_id: str, email: str) -> str:
    """The joinUrl for one person: our signed redirect, resolved to the provider's link (and the person's role)
    at click time. Reads only, so the endpoint the LMS calls on every click stays cheap: the session comes from
    the context's short-lived cache (a session cancelled in another process may still get a URL for up to
    `SESSION_CACHE_SECONDS`; the click on it reads the session again and refuses)."""
    ctx = read.ctx
    found = await ctx.sessions.get((connection.id, external_id),
                                   lambda: read.store.find_session(connection.id, external_id))
    session = known_session(found, external_id)
    require_scheduled(session, "join")
    assert session.id is not None
    claims = LaunchClaims(connection_id=connection.id, session_id=session.id, email=email,
                          issued_at=ctx.clock.now())
    return f"{ctx.launch.public_url.rstrip('/')}/l/{sign_launch(claims, ctx.launch.keys[0])}"


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


def launch_window_opens(session: Session, connection: Connection) -> datetime:
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


async def plan_launch(store: Store, connection: Connection, claims: LaunchClaims, clock: Clock, *,
                      registers_ahead: bool = False) -> LaunchPlan:
    """Check the click may go ahead now, and gather what the provider needs. Reads only. `registers_ahead`: the
    connection's provider registers learners ahead of their click (`app.registrations`), so a link may be waiting."""
    if not connection.active:
        raise IntegrationSwitchedOff("This class's online meeting integration has been switched off. Contact your "
                                     "administrator.")
    session = await store.get_session(claims.session_id)
    if session is None or session.connection_id != connection.id or session.meeting is None:
        raise NotFound("This class no longer exists. Go back to your learning system for its current details.")
    require_scheduled(session, "join")
    now = clock.now()
    opens_at = launch_window_opens(session, connection)
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
    if previous is None and role is Role.ATTENDEE and registers_ahead:
        # Registered ahead of this click (`app.registrations`): the adapter reuses it as it would a previous link.
        ahead = await store.registration(session.id, email, session.meeting.meeting_id)
        previous = LaunchLink(url=ahead.provider_url, personal=True, identity=ahead.identity) if ahead else None
    instructor = await store.find_instructor(connection.id, email) if role is not Role.ATTENDEE else None
    return LaunchPlan(session=session, email=email, lms_email=claims.email, role=role, previous=previous,
                      first_name=instructor.first_name if instructor else None,
                      last_name=instructor.last_name if instructor else None)


async def resolve_launch(provider: Provider, plan: LaunchPlan) -> LaunchLink:
    """The provider's link for this person now. Called outside any database transaction: it may take seconds."""
    assert plan.session.meeting is not None
    person = Person(email=plan.lms_email, first_name=plan.first_name, last_name=plan.last_name)
    return await provider.launch_link(meeting_ref(plan.session.meeting), person, plan.role, plan.previous)


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


def launch_outcome(link: LaunchLink, *, held: bool) -> str:
    """What a click came to, for the metrics (`metrics.LAUNCH_OUTCOMES`): a fallback is a weaker link handed out
    because the better one failed (the adapter marks it in its identity, or offered to hold the person for it)."""
    if held:
        return "held"
    if link.personal:
        return "personal_link"
    if "fallback" in link.identity or link.retry_after_seconds is not None:
        return "fallback"
    return "shared_link"


async def follow(ctx: AppContext, token: str, *, user_agent: str | None, may_hold: bool) -> LaunchLink:
    """Where a click on `/l/<token>` goes: the provider's link for this person now, recorded in the launch ledger.

    When the provider asks for a moment (`retry_after_seconds`, a registration still being processed) and the
    caller `may_hold` the person on a holding page, nothing is recorded: the person has gone nowhere yet."""
    provider_kind = "unknown"  # until the token names a connection that exists
    try:
        claims = read_launch_token(token, ctx.launch, ctx.clock)
        async with reading(ctx) as read:
            connection = await read.store.get_connection(claims.connection_id)
            if connection is None:
                raise NotFound("This class's online meeting integration no longer exists.")
            provider = ctx.providers.for_connection(connection)
            provider_kind = provider.kind
            plan = await plan_launch(read.store, connection, claims, ctx.clock,
                                     registers_ahead=isinstance(provider, RegistersAhead))
        # No database is held while the provider answers (a registration may take seconds): other clicks go on.
        link = await resolve_launch(provider, plan)
    except DomainError:
        metrics.launches.labels(provider_kind, "refused").inc()
        raise
    held = link.retry_after_seconds is not None and may_hold
    metrics.launches.labels(provider_kind, launch_outcome(link, held=held)).inc()
    if held:
        return link
    try:
        async with unit_of_work(ctx) as work:
            await record_launch(work.store, plan, link, ctx.clock, user_agent)
    except SQLAlchemyError:
        # The link is good: the person goes in; the ledger misses one click, and the log says so.
        log.exception("launch ledger write failed; %s sent on anyway", plan.email)
    return link


async def launch_url_for_instructor(ctx: AppContext, connection: str, external_id: str, email: str) -> str | None:
    """The signed launch the LMS would hand out, for one of the part's instructors (the console's "launch as host"):
    the launch window and role apply as usual. None when `email` does not teach that part, as when there is none."""
    async with unit_of_work(ctx) as work:  # ORM reads: console traffic is light
        found = await work.db.run_sync(console_views.session, connection, external_id)
        if found is None or email not in (normalize_email(teacher) for teacher in found[1].instructor_emails):
            return None
        return await launch_url(work, repository.connection_from_row(found[0], ctx.keyring), external_id, email)
