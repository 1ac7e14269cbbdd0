"""Attendance: who attended a part, by the best evidence the provider gives, each decision explained."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from viltbridge.app.launches import launch_window_opens
from viltbridge.app.sessions import meeting_ref, meeting_spec, require_scheduled, require_session
from viltbridge.app.uow import reading, unit_of_work
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
from viltbridge.core.emails import normalize_email
from viltbridge.core.errors import NotReady
from viltbridge.core.models import AttendanceState, Connection, Launch, Role, Session
from viltbridge.core.ports import Store
from viltbridge.core.provider import AttendanceSource, Provider

if TYPE_CHECKING:
    from viltbridge.app.context import AppContext

log = logging.getLogger("viltbridge.services")

# Bounds for "every launch of a session" (dates outside these are refused at the door, see core.times).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2201, 1, 1, tzinfo=UTC)

# With no participant at all this long after the end, the class did not take place: attendance is final, empty.
NO_SHOW_AFTER = timedelta(hours=2)


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
    session = await require_session(store, connection, external_id)
    require_scheduled(session, "report attendance for")
    assert session.id is not None
    now = clock.now()
    opens_at = launch_window_opens(session, connection)
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


async def report(ctx: AppContext, connection: Connection, external_id: str) -> AttendanceResult:
    """GetAttendees: read, ask the provider, then a short write, so no write lock is held while the provider
    answers. What was learned is kept, and the read (with the answer's size) goes on the part's
    timeline."""
    async with reading(ctx) as read:
        result = await attendance(read.store, ctx.providers.for_connection(connection), connection, external_id,
                                  ctx.clock)
    async with unit_of_work(ctx) as work:
        await save_attendance(work.store, result, ctx.clock.now())
        await work.record_lms_read(connection, "lms.attendance", result.session_id,
                                   {"attendees": len(result.emails), "state": result.state.value})
    return result


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
        report = await provider.collect_attendance(meeting_ref(session.meeting), await meeting_spec(store, session))
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
