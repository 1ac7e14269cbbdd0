"""Registering learners ahead of their click, where the provider's personal links are registrations that outlive
the click (`core.provider.RegistersAhead`: GoTo Training).

Why: GoTo Training allows 10 API calls a second, so a class of 500 clicking within five seconds can get at most
about 50 registrant links in time; everyone else waits on the holding page or goes to GoTo's registration page.
The LMS tells us about a learner only when they click (Cornerstone's contract has no roster call), but the
learners of a multi-part session (parts sharing `lo_id`) are known from the earlier parts' launch ledger. So each
part of a multi-part session has a `learners.register` job:

- asked for when any part of the session is saved (`app.sessions.schedule_session`: for the saved part and the
  others, whose earlier parts may have moved);
- each run registers, `BATCH` at a time, the learners who launched another part and have no personal link for
  this part's meeting yet, within the background share of the provider's limit, and stores their links
  (`registrations`, encrypted); then it looks again `LOOK_EVERY` while an earlier part's launch window is open
  (and once after it closes), sleeps until the next earlier part's window opens, and is done after the last;
- a learner's click is then answered from the store (`plan_launch` hands the link to the adapter as the
  `previous` one) without a provider call. Anyone else's click works as before: registered now within the launch
  budget, else held on the holding page, else the meeting's shared page.

Nothing is added to a click: the job finds the clicks in the ledger (a write per click would hold SQLite's lock
longer during the very burst it is meant to relieve). The job's provider calls run before its transaction
(`prepare`, holding no database lock), and `finish` stores what they made. Idempotent: a rerun asks only for
learners without a stored link, and the provider answers a duplicate registration with the existing one. A link is
stored for the meeting it was made for: a cancelled part is skipped, an edited one keeps its links (the meeting is
updated in place), a meeting made afresh gets new registrations.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from viltbridge.app.launches import LAUNCH_GRACE_AFTER_END, launch_window_opens
from viltbridge.app.sessions import meeting_ref
from viltbridge.app.uow import reading
from viltbridge.core.errors import ProviderFailed
from viltbridge.core.models import Connection, Registration, Session, SessionStatus
from viltbridge.core.ports import Store
from viltbridge.core.provider import Person, RegistersAhead

if TYPE_CHECKING:
    from viltbridge.app.context import AppContext

log = logging.getLogger("viltbridge.registrations")

# While an earlier part's launch window is open, the job looks for its new learners this often: learners who
# clicked are registered for the later parts within minutes, at no cost to their clicks.
LOOK_EVERY = timedelta(minutes=2)
# Learners registered per run: at the background share of GoTo's limit (5 a second) about 20 s, well inside a
# job's lease; the job runs again at once while more are waiting.
BATCH = 100
# After a run that stopped early (the provider failed after some registrations): try the rest this much later.
RETRY_REST_AFTER = timedelta(seconds=30)


@dataclass(frozen=True)
class Registered:
    """What one run registered (`prepare`), to be stored with the job's outcome (`finish`)."""

    note: str
    registrations: tuple[Registration, ...] = ()
    meeting_id: str | None = None
    run_again_in: timedelta | None = None  # more learners wait: run again this much later


def next_look(session: Session, others: list[Session], connection: Connection, now: datetime) -> datetime | None:
    """When to look again for learners of the parts before `session`: `LOOK_EVERY` while one of their launch
    windows is open (until `LOOK_EVERY` after it closes, for the clicks of its last minutes), else just after the
    next one opens; None once all have closed."""
    windows = [(launch_window_opens(part, connection), part.ends_at + LAUNCH_GRACE_AFTER_END)
               for part in others if part.starts_at < session.starts_at]
    if any(opens <= now <= closes + LOOK_EVERY for opens, closes in windows):
        return now + LOOK_EVERY
    upcoming = [opens for opens, _ in windows if opens > now]
    return min(upcoming) + LOOK_EVERY if upcoming else None


def _still_wanted(session: Session | None, now: datetime) -> str | None:
    """Why the part needs no registrations now (None: it does)."""
    if session is None:
        return "part gone"
    if session.status is SessionStatus.CANCELLED:
        return "part cancelled"
    if session.meeting is None or session.meeting.cancelled:
        return "part has no meeting yet"
    if now >= session.ends_at:
        return "part has ended"
    return None


async def prepare(ctx: AppContext, session_id: int) -> Registered:
    """Register the next `BATCH` of the part's known learners with the provider. Outside any transaction: reads
    through its own snapshot, then calls the provider."""
    now = ctx.clock.now()
    async with reading(ctx) as read:
        session = await read.store.get_session(session_id)
        if session is not None and session.meeting is None and session.meeting_pending == "create":
            # The provider was down when the part was saved; a meeting.sync job is making its meeting.
            return Registered("the part's meeting is not made yet; looking again later", run_again_in=LOOK_EVERY)
        if (why := _still_wanted(session, now)) is not None:
            return Registered(f"{why}; nobody registered")
        assert session is not None and session.meeting is not None
        connection = await read.store.get_connection(session.connection_id)
        if connection is None or not connection.active:
            return Registered("connection gone or switched off; nobody registered")
        provider = ctx.providers.for_connection(connection)
        if not isinstance(provider, RegistersAhead):
            return Registered(f"{provider.kind} does not register people ahead; nothing to do")
        teachers = set(session.instructor_emails)
        learners = [(email, lms_email) for email, lms_email in await read.store.learners_to_register(session)
                    if email not in teachers]
        look = next_look(session, await read.store.other_parts(session), connection, now)
    later = None if look is None else look - now
    if not learners:
        return Registered("every known learner has a link for this part" + _looking(look), run_again_in=later)
    batch = learners[:BATCH]
    emails = {lms_email: email for email, lms_email in batch}
    meeting = session.meeting
    try:
        made = await provider.register_ahead(meeting_ref(meeting), [Person(email=lms) for _, lms in batch])
    except ProviderFailed as err:
        if err.transient:
            raise  # the job retries (the provider's outage, our own limiter holding the calls back)
        async with reading(ctx) as read:
            now_session = await read.store.get_session(session_id)
        if (why := _still_wanted(now_session, ctx.clock.now())) is not None or (
                now_session is not None and now_session.meeting is not None
                and now_session.meeting.meeting_id != meeting.meeting_id):
            return Registered(f"{why or 'meeting replaced'} while registering; nobody registered")
        raise
    registrations = tuple(
        Registration(session_id=session_id, email=emails[person.email], lms_email=person.email,
                     meeting_id=meeting.meeting_id, provider_url=link.url, identity=dict(link.identity),
                     registered_at=ctx.clock.now())
        for person, link in made if link.personal)
    waiting = len(learners) - len(registrations)
    note = f"registered {len(registrations)} of {len(learners)} known learner(s) ahead"
    if len(made) < len(batch):
        return Registered(f"{note}; the provider stopped the run, the rest later", registrations,
                          meeting.meeting_id, RETRY_REST_AFTER)
    if waiting:
        return Registered(f"{note}; the next {min(waiting, BATCH)} now", registrations, meeting.meeting_id,
                          timedelta(0))
    return Registered(note + _looking(look), registrations, meeting.meeting_id, later)


def _looking(look: datetime | None) -> str:
    return f"; looking again at {look:%Y-%m-%d %H:%M} UTC" if look is not None else ""


async def finish(store: Store, registered: Registered) -> None:
    """Store what `prepare` registered, unless the part's meeting changed meanwhile (its links would not work)."""
    if not registered.registrations:
        return
    session = await store.get_session(registered.registrations[0].session_id)
    if session is None or session.meeting is None or session.meeting.meeting_id != registered.meeting_id:
        log.info("registrations for meeting %s not kept: the part's meeting changed meanwhile", registered.meeting_id)
        return
    await store.save_registrations(list(registered.registrations))
