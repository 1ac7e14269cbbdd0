"""An instructor's console: their own sessions in their own time zone with scheduling conflicts flagged, a
launch-as-host button, a personal calendar feed, and after class the attendance timeline chart. The chart is on the
admin's session page too."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from viltbridge.app import attendance_admin, console_users, launches
from viltbridge.app.attendance_admin import PartAttendance
from viltbridge.app.context import context_of
from viltbridge.app.uow import run
from viltbridge.core.emails import normalize_email
from viltbridge.core.errors import DomainError
from viltbridge.core.permissions import Permission
from viltbridge.core.schedule import Booking, find_conflicts, host_account_of
from viltbridge.store import console_views
from viltbridge.store.tables import SessionRow
from viltbridge.web.console import auth, calendar, charts, timefmt
from viltbridge.web.console.auth import ConsoleSession
from viltbridge.web.console.routes import page

router = APIRouter(prefix="/console", include_in_schema=False)

Teacher = Annotated[ConsoleSession, Depends(auth.requires(Permission.OWN_SESSIONS))]



def booking(connection: str, row: SessionRow) -> Booking:
    return Booking(connection, row.external_id, row.title, row.starts_at, row.ends_at,
                   tuple(row.instructor_emails), host_account_of(row.meeting_provider, row.meeting_data))


def conflicts_by_session(rows: list[tuple[str, SessionRow]]) -> dict[tuple[str, str], list[str]]:
    """Scheduled parts only: a cancelled class frees its instructor."""
    live = [booking(name, row) for name, row in rows if row.status != "cancelled"]
    found: dict[tuple[str, str], list[str]] = {}
    for conflict in find_conflicts(live):
        for side in (conflict.first, conflict.second):
            found.setdefault((side.connection, side.session_id), []).append(conflict.describe())
    return found


def _teaches(session: ConsoleSession, row: SessionRow) -> bool:
    return session.user.email in (normalize_email(email) for email in row.instructor_emails)


def _mine(session: ConsoleSession, rows: list[tuple[str, SessionRow]]) -> list[tuple[str, SessionRow]]:
    return [(name, row) for name, row in rows if _teaches(session, row)]


@router.get("/my-sessions")
async def my_sessions(request: Request, session: Teacher) -> HTMLResponse:
    ctx = context_of(request)
    wanted = console_views.SessionFilter(starts_from=ctx.clock.now() - timedelta(days=30))
    everyone = await run(ctx, console_views.sessions, wanted, limit=None)
    rows = _mine(session, everyone)
    mine = {(name, row.external_id) for name, row in rows}
    # Host accounts are shared between instructors: conflicts are found among everyone's parts, shown for mine.
    conflicts = {key: reasons for key, reasons in conflicts_by_session(everyone).items() if key in mine}
    zone = timefmt.zone_named(session.user.time_zone)
    feed = calendar.feed_url(ctx.public_url, ctx.keyring, session.user.id, session.user.session_version)
    upcoming = sorted(((name, row) for name, row in rows if row.ends_at >= ctx.clock.now()),
                      key=lambda item: item[1].starts_at)
    past = [(name, row) for name, row in rows if row.ends_at < ctx.clock.now()]
    warnings = sorted({reason for reasons in conflicts.values() for reason in reasons})  # each pair once
    places = await run(ctx, console_views.part_places, [row for _, row in rows])
    return page(request, "my_sessions.html", session, upcoming=upcoming, past=past, conflicts=conflicts,
                warnings=warnings, zone=zone, feed_url=feed, places=places, now=ctx.clock.now())


@router.get("/my-calendar")
async def my_calendar(request: Request, session: Teacher,
                      week: Annotated[str | None, Query(pattern=r"^\d{4}-W\d{2}$")] = None) -> HTMLResponse:
    """A week of the instructor's classes as a grid of days in their own zone (ISO week `2026-W10`)."""
    ctx = context_of(request)
    zone = timefmt.zone_named(session.user.time_zone)
    today = ctx.clock.now().astimezone(zone).date()
    if week:
        year, number = int(week[:4]), int(week[6:])
        try:
            monday = date.fromisocalendar(year, number, 1)
        except ValueError:
            return page(request, "message.html", session, status=400, title="No such week",
                        message=f"{week} is not a week of {year}; weeks run from W01 to W52 or W53.")
    else:
        monday = today - timedelta(days=today.weekday())
    start = datetime.combine(monday, time(0), zone)
    days = [monday + timedelta(days=n) for n in range(7)]
    wanted = console_views.SessionFilter(starts_from=start - timedelta(days=1), starts_until=start + timedelta(days=8))
    everyone = await run(ctx, console_views.sessions, wanted, limit=None)
    rows = _mine(session, everyone)
    conflicts = conflicts_by_session(everyone)
    by_day: dict[date, list[tuple[str, SessionRow]]] = {day: [] for day in days}
    for name, row in sorted(rows, key=lambda item: item[1].starts_at):
        local_day = row.starts_at.astimezone(zone).date()
        if local_day in by_day:
            by_day[local_day].append((name, row))
    previous, following = monday - timedelta(days=7), monday + timedelta(days=7)
    places = await run(ctx, console_views.part_places, [row for _, row in rows])
    return page(request, "my_calendar.html", session, days=days, by_day=by_day, zone=zone, today=today,
                conflicts=conflicts, places=places, now=ctx.clock.now(),
                week=f"{monday.isocalendar().year}-W{monday.isocalendar().week:02d}",
                previous=f"{previous.isocalendar().year}-W{previous.isocalendar().week:02d}",
                following=f"{following.isocalendar().year}-W{following.isocalendar().week:02d}")


def _not_yours(request: Request, session: ConsoleSession, connection: str, external_id: str) -> HTMLResponse:
    return page(request, "message.html", session, status=404, title="Not your session",
                message=f"You do not teach a session '{external_id}' in '{connection}'.")


@router.get("/my-sessions/{connection}/{external_id}/launch")
async def launch_as_host(request: Request, connection: str, external_id: str, session: Teacher) -> Response:
    """The same signed launch the LMS hands out, for this instructor: the launch window and role apply as usual."""
    try:
        url = await launches.launch_url_for_instructor(context_of(request), connection, external_id,
                                                       session.user.email)
    except DomainError as err:
        return page(request, "message.html", session, status=err.status, title="No launch", message=err.message)
    if url is None:
        return _not_yours(request, session, connection, external_id)
    return RedirectResponse(url, status_code=303)


def _bars(facts: PartAttendance) -> list[charts.LearnerBar]:
    decided = {result.email.lower(): result.attended for result in facts.results}
    clicks: dict[str, list[datetime]] = {}
    for email, times in facts.launches.items():
        clicks.setdefault(email.lower(), []).extend(times)
    spelled: dict[str, str] = {}
    for email in [*facts.intervals, *(result.email for result in facts.results), *facts.launches]:
        spelled.setdefault(email.lower(), email)
    return [charts.LearnerBar(email, decided.get(key), tuple(facts.intervals.get(email, ())),
                              tuple(sorted(clicks.get(key, ()))))
            for key, email in sorted(spelled.items())]


def attendance_chart(facts: PartAttendance, zone: ZoneInfo) -> tuple[str, str]:
    """The part's attendance timeline as SVG on the viewer's clock, from the ledger as it stands (no provider
    call), with the part's decisions, which the page shows too; and the sentence saying what it is drawn from."""
    bars = _bars(facts)
    return (charts.timeline_svg(facts.part.starts_at, facts.part.ends_at, facts.policy, bars, zone),
            charts.evidence_note(bars))


@router.get("/my-sessions/{connection}/{external_id}")
async def my_session(request: Request, connection: str, external_id: str, session: Teacher) -> HTMLResponse:
    facts = await attendance_admin.part_attendance(context_of(request), connection, external_id)
    if facts is None or not _teaches(session, facts.part):  # anyone else's part looks like no part
        return _not_yours(request, session, connection, external_id)
    zone = timefmt.zone_named(session.user.time_zone)
    chart, evidence = attendance_chart(facts, zone)
    return page(request, "my_session.html", session, connection=connection, row=facts.part, facts=facts,
                chart=chart, evidence=evidence, results=facts.results, zone=zone, now=context_of(request).clock.now(),
                launch=f"/console/my-sessions/{quote(connection)}/{quote(external_id)}/launch")


@router.get("/ics/{user_id}/{token}.ics")
async def ics_feed(request: Request, user_id: int, token: str) -> Response:
    """Public to whoever holds the URL (calendar apps cannot sign in); the token is the credential."""
    ctx = context_of(request)
    user = await run(ctx, console_users.get, user_id)
    if (user is None or not user.active
            or not calendar.feed_token_matches(ctx.keyring, user.id, user.session_version, token)):
        return Response("No such calendar feed.", status_code=404, media_type="text/plain")
    rows = await run(ctx, console_views.sessions, console_views.SessionFilter(
        instructor=user.email, starts_from=ctx.clock.now() - timedelta(days=90)))
    places = await run(ctx, console_views.part_places, [row for _, row in rows])
    body = calendar.feed(user.display_name, rows, ctx.clock.now(), f"{ctx.public_url.rstrip('/')}/console", places)
    return Response(body, media_type="text/calendar; charset=utf-8",
                    headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
