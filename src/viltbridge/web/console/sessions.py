"""Console pages about sessions: the list with filters, one part's page (facts, timeline, attendance with every
decision explained, rows to review), re-sync, attendance exports, and dead background jobs with retry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from viltbridge.app import attendance_admin, dead_jobs, sessions
from viltbridge.app.attendance_admin import InvalidField
from viltbridge.app.context import context_of
from viltbridge.app.uow import run
from viltbridge.core.errors import DomainError
from viltbridge.core.part_states import AttendancePhase, PartLife, attendance_phase_named, part_life_named
from viltbridge.core.permissions import Permission
from viltbridge.store import console_views
from viltbridge.store.tables import SessionRow
from viltbridge.web.console import auth, instructor, timefmt
from viltbridge.web.console.auth import ConsoleSession
from viltbridge.web.console.routes import page, see_other

router = APIRouter(prefix="/console", include_in_schema=False)

Viewer = Annotated[ConsoleSession, Depends(auth.requires(Permission.VIEW_SESSIONS))]
RosterManager = Annotated[ConsoleSession, Depends(auth.requires(Permission.MANAGE_ROSTER))]



def _day(value: str | None, field: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        raise DomainError(f"{field} must be a date like 2026-03-02, not '{value}'.") from None


@dataclass(frozen=True)
class ListedClass:
    """One class in the sessions list: a single part, or the listed parts of a multi-part session (one LoId)."""

    connection: str
    parts: list[SessionRow]  # by start

    @property
    def first(self) -> SessionRow:
        return self.parts[0]


def grouped(rows: list[tuple[str, SessionRow]], places: dict[int, console_views.PartPlace]) -> list[ListedClass]:
    """Parts sharing an LoId become one class, placed where its first listed part was; the others stay alone."""
    classes: dict[tuple[str, str], ListedClass] = {}
    for name, row in rows:
        key = (name, f"lo:{row.lo_id}") if row.id in places else (name, f"part:{row.external_id}")
        classes.setdefault(key, ListedClass(name, [])).parts.append(row)
    for listed in classes.values():
        listed.parts.sort(key=lambda row: (row.starts_at, row.external_id))
    return list(classes.values())


@router.get("/sessions")
async def session_list(
        request: Request, session: Viewer,
        connection: Annotated[str | None, Query(max_length=100)] = None,
        status: Annotated[str | None, Query(max_length=20)] = None,
        attendance: Annotated[str | None, Query(max_length=20)] = None,
        starts_from: Annotated[str | None, Query(alias="from", max_length=10)] = None,
        starts_until: Annotated[str | None, Query(alias="until", max_length=10)] = None,
        q: Annotated[str | None, Query(max_length=200)] = None) -> HTMLResponse:
    ctx = context_of(request)
    try:
        wanted = console_views.SessionFilter(
            connection=connection or None, status=part_life_named(status) if status else None,
            attendance=attendance_phase_named(attendance) if attendance else None, now=ctx.clock.now(),
            starts_from=_day(starts_from, "from"), starts_until=_day(starts_until, "until"), text=q or None)
    except DomainError as err:
        return page(request, "message.html", session, status=400, title="Check the filter", message=err.message)
    rows = await run(ctx, console_views.sessions, wanted)
    places = await run(ctx, console_views.part_places, [row for _, row in rows])
    names = await run(ctx, console_views.connection_names)
    if wanted.connection and wanted.connection not in names:
        names.append(wanted.connection)  # an old link's connection stays shown as chosen (and matches nothing)
    return page(request, "sessions.html", session, classes=grouped(rows, places), places=places,
                connections=names, now=ctx.clock.now(), lives=list(PartLife), phases=list(AttendancePhase),
                filters={"connection": connection or "", "status": wanted.status.value if wanted.status else "",
                         "attendance": wanted.attendance.value if wanted.attendance else "",
                         "from": starts_from or "", "until": starts_until or "", "q": q or ""})


# What a change done says on the page it returns to; fixed words, so nothing typed is echoed from the URL.
DONE_MESSAGES = {
    "override": "Override saved: attendance is being computed again with it.",
    "cleared": "Override cleared: attendance goes back to what the evidence says.",
    "resync": "Re-sync asked for: attendance is being collected again in the background.",
    "resolved": "Saved who that participant is: attendance is being computed again.",
    "cancelled": "Session cancelled.",
}


def _part_url(connection: str, external_id: str, done: str) -> str:
    return f"/console/sessions/{quote(connection, safe='')}/{quote(external_id, safe='')}?done={done}"


async def _part_page(request: Request, session: ConsoleSession, connection: str, external_id: str, *,
                     status: int = 200, done: str | None = None, refused: InvalidField | None = None,
                     typed: dict[str, str] | None = None) -> HTMLResponse:
    ctx = context_of(request)
    review = await attendance_admin.part_review(ctx, connection, external_id)
    if review is None:
        return page(request, "message.html", session, status=404, title="No such session",
                    message=f"Connection '{connection}' has no session '{external_id}'.")
    facts = review.attendance
    chart, evidence = instructor.attendance_chart(facts, timefmt.zone_named(session.user.time_zone))
    return page(request, "session.html", session, status=status, connection=connection, row=facts.part,
                facts=facts, timeline=review.timeline, results=facts.results, reviews=review.reviews, chart=chart,
                evidence=evidence, learners=review.learners, overrides=review.overrides, now=ctx.clock.now(),
                done=DONE_MESSAGES.get(done or ""), refused=refused, typed=typed or {})


@router.get("/sessions/{connection}/{external_id}")
async def session_page(request: Request, connection: str, external_id: str, session: Viewer,
                       done: Annotated[str | None, Query(max_length=20)] = None) -> HTMLResponse:
    return await _part_page(request, session, connection, external_id, done=done)


@router.post("/sessions/{connection}/{external_id}/resync")
async def resync(request: Request, connection: str, external_id: str, session: RosterManager) -> Response:
    """Ask for attendance again now (from the ledger and, unless final, the provider) in the background."""
    try:
        await attendance_admin.resync(context_of(request), connection, external_id, actor=session.user.email)
    except DomainError as err:
        return page(request, "message.html", session, status=err.status, title="Not re-synced", message=err.message)
    return see_other(request, _part_url(connection, external_id, "resync"))


@router.post("/sessions/{connection}/{external_id}/cancel")
async def cancel(request: Request, connection: str, external_id: str,
                 session: Annotated[ConsoleSession, Depends(auth.requires(Permission.CANCEL_SESSIONS))]) -> Response:
    """As the LMS's DELETE: the provider meeting goes too (if the connection cancels automatically); audited."""
    try:
        await sessions.cancel_from_console(context_of(request), connection, external_id, actor=session.user.email)
    except DomainError as err:
        return page(request, "message.html", session, status=err.status, title="Not cancelled",
                    message=err.message)
    return see_other(request, _part_url(connection, external_id, "cancelled"))


@router.post("/sessions/{connection}/{external_id}/overrides")
async def override(request: Request, connection: str, external_id: str, session: RosterManager,
                   email: Annotated[str, Form(max_length=320)], attended: Annotated[str, Form(max_length=10)],
                   reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """Set (attended yes or no, with the reason) or clear an admin's decision for one learner; attendance is
    computed again with it and the explanation keeps what the evidence said. Refused: the part's page again, the
    message beside the field and what was typed kept."""
    try:
        await attendance_admin.override(context_of(request), connection, external_id, email=email, attended=attended,
                                        reason=reason, actor=session.user.email)
    except InvalidField as err:
        return await _part_page(request, session, connection, external_id, status=err.status, refused=err,
                                typed={"email": email, "attended": attended, "reason": reason})
    except DomainError as err:
        return page(request, "message.html", session, status=err.status, title="Not changed", message=err.message)
    return see_other(request, _part_url(connection, external_id,
                                        "cleared" if attended.strip().lower() == "clear" else "override"))


@router.post("/sessions/{connection}/{external_id}/reviews/resolve")
async def resolve_review(request: Request, connection: str, external_id: str, session: RosterManager,
                         provider_email: Annotated[str, Form(max_length=320)],
                         lms_email: Annotated[str, Form(max_length=320)]) -> Response:
    """A row to review says who it is at the provider (an email); the admin says which learner that is. Kept as
    the connection's alias (the same table as `viltbridge attendance alias`), audited, and the part's attendance
    is computed again with it."""
    try:
        await attendance_admin.resolve_review(context_of(request), connection, external_id,
                                              provider_email=provider_email, lms_email=lms_email,
                                              actor=session.user.email)
    except InvalidField as err:
        return await _part_page(request, session, connection, external_id, status=err.status, refused=err,
                                typed={"provider_email": provider_email, "lms_email": lms_email})
    except DomainError as err:
        return page(request, "message.html", session, status=err.status, title="Not resolved", message=err.message)
    return see_other(request, _part_url(connection, external_id, "resolved"))


@router.get("/exports/attendance.{fmt}")
async def export_attendance(
        request: Request, session: Viewer, fmt: Annotated[str, Path(pattern="^(csv|json)$")],
        connection: Annotated[str | None, Query(max_length=100)] = None,
        external_id: Annotated[str | None, Query(alias="session", max_length=200)] = None,
        by: Annotated[str, Query(pattern="^(part|session)$")] = "part") -> Response:
    """Every decision as CSV (spreadsheet-safe) or JSON, per part or rolled up per multi-part session."""
    ctx = context_of(request)
    wanted = attendance_admin.ExportFilter(connection=connection or None, session=external_id or None,
                                           now=ctx.clock.now())
    try:
        if by == "session":
            rows = await run(ctx, attendance_admin.export_session_rows, wanted)
            fields = attendance_admin.SESSION_EXPORT_FIELDS
        else:
            rows = await run(ctx, attendance_admin.export_rows, wanted)
            fields = attendance_admin.EXPORT_FIELDS
    except DomainError as err:
        return page(request, "message.html", session, status=err.status, title="Nothing to export",
                    message=err.message)
    name = "-".join(part for part in ("attendance", connection, external_id, by) if part)
    body = attendance_admin.to_csv(rows, fields) if fmt == "csv" else attendance_admin.to_json(rows)
    return Response(body, media_type="text/csv; charset=utf-8" if fmt == "csv" else "application/json",
                    headers={"Content-Disposition": f'attachment; filename="{quote(name)}.{fmt}"',
                             "Cache-Control": "no-store"})


@router.get("/jobs")
async def dead_job_list(request: Request, session: RosterManager) -> HTMLResponse:
    return page(request, "jobs.html", session, jobs=await dead_jobs.listing(context_of(request)))


@router.post("/jobs/{job_id}/retry")
async def retry_job(request: Request, job_id: int, session: RosterManager) -> Response:
    if not await dead_jobs.retry(context_of(request), job_id, actor=session.user.email):
        return page(request, "message.html", session, status=409, title="Not retried",
                    message=f"Job #{job_id} is not dead (it is queued or running already, or does not exist).")
    return see_other(request, "/console/jobs")
