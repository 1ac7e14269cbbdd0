"""Console pages about sessions: the list with filters, one part's page (facts, timeline, attendance with every
decision explained, rows to review), re-sync, attendance exports, and dead background jobs with retry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from viltbridge.app import attendance_admin, sessions
from viltbridge.app.context import context_of
from viltbridge.core import jobs
from viltbridge.core.attendance import AttendanceOverride
from viltbridge.core.errors import DomainError, NotFound
from viltbridge.core.permissions import Permission
from viltbridge.store import attendance_ledger, audit, console_views, repository
from viltbridge.store import job_ledger as ledger
from viltbridge.store.repository import AsyncSqlStore
from viltbridge.store.tables import ConnectionRow, SessionRow
from viltbridge.web.console import auth, instructor
from viltbridge.web.console.auth import ConsoleSession
from viltbridge.web.console.routes import page, see_other

router = APIRouter(prefix="/console", include_in_schema=False)

Viewer = Annotated[ConsoleSession, Depends(auth.requires(Permission.VIEW_SESSIONS))]
RosterManager = Annotated[ConsoleSession, Depends(auth.requires(Permission.MANAGE_ROSTER))]



async def _require_part(db: Any, connection: str, external_id: str) -> tuple[ConnectionRow, SessionRow]:
    found = await db.run_sync(lambda s: console_views.session(s, connection, external_id))
    if found is None:
        raise NotFound(f"Connection '{connection}' has no session '{external_id}'.")
    return found  # type: ignore[no-any-return]


async def _recompute(db: Any, conn_row: ConnectionRow, row: SessionRow, now: datetime) -> int:
    """Attendance computed again in the background, final parts too (from the ledger alone once final)."""
    job_id: int = await db.run_sync(lambda s: ledger.enqueue(
        s, jobs.recompute_attendance(row.id, conn_row.id, now), now))
    return job_id


def _day(value: str | None, field: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        raise DomainError(f"{field} must be a date like 2026-03-02, not '{value}'.") from None


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
        wanted = console_views.SessionFilter(connection=connection or None, status=status or None,
                                             attendance=attendance or None, starts_from=_day(starts_from, "from"),
                                             starts_until=_day(starts_until, "until"), text=q or None)
    except DomainError as err:
        return page(request, "message.html", session, status=400, title="Check the filter", message=err.message)
    async with ctx.db.transaction() as db:
        rows = await db.run_sync(lambda s: console_views.sessions(s, wanted))
    return page(request, "sessions.html", session, rows=rows, wanted=wanted,
                filters={"connection": connection or "", "status": status or "", "attendance": attendance or "",
                         "from": starts_from or "", "until": starts_until or "", "q": q or ""})


@router.get("/sessions/{connection}/{external_id}")
async def session_page(request: Request, connection: str, external_id: str, session: Viewer) -> HTMLResponse:
    ctx = context_of(request)
    async with ctx.db.transaction() as db:
        found = await db.run_sync(lambda s: console_views.session(s, connection, external_id))
        if found is None:
            return page(request, "message.html", session, status=404, title="No such session",
                        message=f"Connection '{connection}' has no session '{external_id}'.")
        conn_row, row = found
        results = await db.run_sync(lambda s: attendance_ledger.results(s, row.id))
        chart = await instructor.attendance_chart(ctx, db, conn_row, row, results)
        entries = await db.run_sync(lambda s: console_views.timeline(s, connection, row))
        reviews = await db.run_sync(lambda s: attendance_ledger.reviews(s, row.id))
        learners = await db.run_sync(lambda s: console_views.learners(s, row.id))
        overrides = await db.run_sync(lambda s: attendance_ledger.overrides(s, row.id))
    return page(request, "session.html", session, connection=connection, row=row, timeline=entries,
                results=results, reviews=reviews, chart=chart, learners=learners, overrides=overrides)


@router.post("/sessions/{connection}/{external_id}/resync")
async def resync(request: Request, connection: str, external_id: str, session: RosterManager) -> Response:
    """Ask for attendance again now (from the ledger and, unless final, the provider) in the background."""
    ctx = context_of(request)
    now = ctx.clock.now()
    try:
        async with ctx.db.transaction() as db:
            conn_row, row = await _require_part(db, connection, external_id)
            job_id = await _recompute(db, conn_row, row, now)
            await db.run_sync(lambda s: audit.record(s, now, session.user.email, "attendance.resync",
                                                     f"session:{connection}/{external_id}", after={"job": job_id}))
    except DomainError as err:
        return page(request, "message.html", session, status=err.status, title="Not re-synced", message=err.message)
    await ctx.kick([job_id])
    return see_other(request, f"/console/sessions/{quote(connection)}/{quote(external_id)}")


@router.post("/sessions/{connection}/{external_id}/cancel")
async def cancel(request: Request, connection: str, external_id: str,
                 session: Annotated[ConsoleSession, Depends(auth.requires(Permission.CANCEL_SESSIONS))]) -> Response:
    """As the LMS's DELETE: the provider meeting goes too (if the connection cancels automatically); audited."""
    ctx = context_of(request)
    now = ctx.clock.now()
    try:
        async with ctx.db.transaction() as db:
            conn_row, _ = await _require_part(db, connection, external_id)
            lms_connection = repository.connection_from_row(conn_row, ctx.keyring)
            store = AsyncSqlStore(db, ctx.keyring)
            await sessions.cancel_session(store, ctx.providers.for_connection(lms_connection), lms_connection,
                                          external_id, ctx.clock)
            await db.run_sync(lambda s: audit.record(s, now, session.user.email, "session.cancel",
                                                     f"session:{connection}/{external_id}"))
    except DomainError as err:
        return page(request, "message.html", session, status=err.status, title="Not cancelled",
                    message=err.message)
    await ctx.kick(store.enqueued)
    return see_other(request, f"/console/sessions/{quote(connection)}/{quote(external_id)}")


@router.post("/sessions/{connection}/{external_id}/overrides")
async def override(request: Request, connection: str, external_id: str, session: RosterManager,
                   email: Annotated[str, Form(max_length=320)], attended: Annotated[str, Form(max_length=10)],
                   reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """Set (attended yes or no, with the reason) or clear an admin's decision for one learner; attendance is
    computed again with it and the explanation keeps what the evidence said."""
    ctx = context_of(request)
    now = ctx.clock.now()
    choice = attended.strip().lower()
    try:
        if choice not in ("yes", "no", "clear"):
            raise DomainError("Choose attended yes, no, or clear (back to what the evidence says).")
        if choice != "clear" and len(reason.strip()) < 3:
            raise DomainError("Say why (e.g. 'joined by phone, confirmed by the instructor'): an override without a "
                              "reason cannot be explained later.")
        async with ctx.db.transaction() as db:
            conn_row, row = await _require_part(db, connection, external_id)
            learners = await db.run_sync(lambda s: console_views.learners(s, row.id))
            spelled = {learner.lower(): learner for learner in learners}
            if email.strip().lower() not in spelled:
                raise DomainError(f"{email} is not a learner of this session (launched or decided).")
            lms_email = spelled[email.strip().lower()]
            if choice == "clear":
                await db.run_sync(lambda s: attendance_ledger.remove_override(s, row.id, lms_email))
                after: dict[str, object] = {"email": lms_email, "override": "cleared"}
            else:
                decision = AttendanceOverride(lms_email, choice == "yes", reason.strip(), session.user.email)
                await db.run_sync(lambda s: attendance_ledger.set_override(s, row.id, decision, now))
                after = {"email": lms_email, "attended": choice == "yes", "reason": reason.strip()}
            job_id = await _recompute(db, conn_row, row, now)
            await db.run_sync(lambda s: audit.record(s, now, session.user.email, "attendance.override",
                                                     f"session:{connection}/{external_id}", after=after))
    except DomainError as err:
        return page(request, "message.html", session, status=err.status, title="Not changed", message=err.message)
    await ctx.kick([job_id])
    return see_other(request, f"/console/sessions/{quote(connection)}/{quote(external_id)}")


@router.post("/sessions/{connection}/{external_id}/reviews/resolve")
async def resolve_review(request: Request, connection: str, external_id: str, session: RosterManager,
                         provider_email: Annotated[str, Form(max_length=320)],
                         lms_email: Annotated[str, Form(max_length=320)]) -> Response:
    """A row to review says who it is at the provider (an email); the admin says which learner that is. Kept as
    the connection's alias (the same table as `viltbridge attendance alias`), audited, and the part's attendance
    is computed again with it."""
    ctx = context_of(request)
    now = ctx.clock.now()
    try:
        async with ctx.db.transaction() as db:
            conn_row, row = await _require_part(db, connection, external_id)
            learners = await db.run_sync(lambda s: console_views.learners(s, row.id))
            if lms_email.strip().lower() not in {email.lower() for email in learners}:
                raise DomainError(f"{lms_email} is not a learner of this session (launched or decided); pick one "
                                  "of the listed learners.")
            await db.run_sync(lambda s: attendance_admin.set_alias(s, connection, provider_email, lms_email))
            job_id = await _recompute(db, conn_row, row, now)
            await db.run_sync(lambda s: audit.record(
                s, now, session.user.email, "attendance.resolve", f"session:{connection}/{external_id}",
                after={"provider_email": provider_email, "lms_email": lms_email, "job": job_id}))
    except DomainError as err:
        return page(request, "message.html", session, status=err.status, title="Not resolved", message=err.message)
    await ctx.kick([job_id])
    return see_other(request, f"/console/sessions/{quote(connection)}/{quote(external_id)}")


@router.get("/exports/attendance.{fmt}")
async def export_attendance(
        request: Request, session: Viewer, fmt: Annotated[str, Path(pattern="^(csv|json)$")],
        connection: Annotated[str | None, Query(max_length=100)] = None,
        external_id: Annotated[str | None, Query(alias="session", max_length=200)] = None,
        by: Annotated[str, Query(pattern="^(part|session)$")] = "part") -> Response:
    """Every decision as CSV (spreadsheet-safe) or JSON, per part or rolled up per multi-part session."""
    ctx = context_of(request)
    wanted = attendance_admin.ExportFilter(connection=connection or None, session=external_id or None)
    try:
        async with ctx.db.transaction() as db:
            if by == "session":
                rows = await db.run_sync(lambda s: attendance_admin.export_session_rows(s, wanted))
                fields = attendance_admin.SESSION_EXPORT_FIELDS
            else:
                rows = await db.run_sync(lambda s: attendance_admin.export_rows(s, wanted))
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
async def dead_jobs(request: Request, session: RosterManager) -> HTMLResponse:
    ctx = context_of(request)
    async with ctx.db.transaction() as db:
        dead = await db.run_sync(lambda s: ledger.listing(s, states=(ledger.DEAD,)))
    return page(request, "jobs.html", session, jobs=dead)


@router.post("/jobs/{job_id}/retry")
async def retry_job(request: Request, job_id: int, session: RosterManager) -> Response:
    ctx = context_of(request)
    now = ctx.clock.now()
    async with ctx.db.transaction() as db:
        again = await db.run_sync(lambda s: ledger.retry(s, job_id, now))
        if again:
            await db.run_sync(lambda s: audit.record(s, now, session.user.email, "job.retry", f"job:{job_id}"))
    if not again:
        return page(request, "message.html", session, status=409, title="Not retried",
                    message=f"Job #{job_id} is not dead (it is queued or running already, or does not exist).")
    await ctx.kick([job_id])
    return see_other(request, "/console/jobs")
