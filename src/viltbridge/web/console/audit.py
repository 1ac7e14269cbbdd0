"""The audit log page: every change, newest first, each shown as what changed (field: old → new), filtered by who,
what, connection, session and days (in the viewer's zone), paged by id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from viltbridge.app.context import context_of
from viltbridge.app.uow import run
from viltbridge.core.audit_diff import FieldChange, changes
from viltbridge.core.permissions import Permission
from viltbridge.store import audit, repository
from viltbridge.store.tables import AuditRow
from viltbridge.web.console import auth
from viltbridge.web.console.auth import ConsoleSession
from viltbridge.web.console.routes import page

router = APIRouter(prefix="/console", include_in_schema=False)

Auditor = Annotated[ConsoleSession, Depends(auth.requires(Permission.MANAGE_INTEGRATIONS))]

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50


@dataclass(frozen=True)
class Entry:
    """One audit row as the page shows it."""

    row: AuditRow
    changes: list[FieldChange]
    link: str | None  # the console page of what was changed, when it has one


def _link(target: str) -> str | None:
    kind, _, name = target.partition(":")
    if kind == "connection" and name:
        return f"/console/connections/{_quoted(name)}"
    if kind == "session" and "/" in name:
        connection, _, external_id = name.partition("/")
        return f"/console/sessions/{_quoted(connection)}/{_quoted(external_id)}"
    return None


def _quoted(part: str) -> str:
    return quote(part, safe="")


def _day(value: str, label: str, errors: dict[str, str], field: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors[field] = f"{label} must be a date like 2026-03-02, not '{value}'. Pick one from the calendar."
        return None


@router.get("/audit")
async def audit_log(
        request: Request, session: Auditor,
        who: Annotated[str, Query(max_length=320)] = "",
        what: Annotated[str, Query(max_length=100)] = "",
        connection: Annotated[str, Query(max_length=100)] = "",
        part: Annotated[str, Query(alias="session", max_length=200)] = "",
        since: Annotated[str, Query(alias="from", max_length=20)] = "",
        until: Annotated[str, Query(max_length=20)] = "",
        size: Annotated[int, Query(ge=1, le=max(PAGE_SIZES))] = DEFAULT_PAGE_SIZE,
        before: Annotated[int | None, Query(ge=0)] = None,
        after: Annotated[int | None, Query(ge=0)] = None) -> HTMLResponse:
    ctx = context_of(request)
    zone = ZoneInfo(session.user.time_zone)
    errors: dict[str, str] = {}
    first, last = _day(since, "From", errors, "from"), _day(until, "Until", errors, "until")
    if first and last and last < first:
        errors["until"] = f"Until ({last}) is before From ({first}): pick a later day, or swap them."
    values = {"who": who, "what": what, "connection": connection, "session": part, "from": since, "until": until,
              "size": str(size)}
    choices = await run(ctx, audit.choices)
    names = [row.name for row in await run(ctx, repository.all_connection_rows)]
    if errors:
        return page(request, "audit.html", session, status=400, entries=[], errors=errors, values=values,
                    choices=choices, connections=names, sizes=PAGE_SIZES, zone=zone, newer=None, older=None,
                    filtered=True, paged=False)
    wanted = audit.AuditFilter(
        actor=who.strip(), action=what.strip(), connection=connection.strip(), session=part.strip(),
        since=datetime.combine(first, time(0), zone) if first else None,
        until=datetime.combine(last + timedelta(days=1), time(0), zone) if last else None)
    found = await run(ctx, audit.page, wanted, size=size, before=before, after=after)
    kept = {key: value for key, value in values.items() if value and not (key == "size" and size == DEFAULT_PAGE_SIZE)}
    newer = f"/console/audit?{urlencode({**kept, 'after': found.newer})}" if found.newer is not None else None
    older = f"/console/audit?{urlencode({**kept, 'before': found.older})}" if found.older is not None else None
    entries = [Entry(row, changes(row.before, row.after), _link(row.target)) for row in found.rows]
    return page(request, "audit.html", session, entries=entries, errors=errors, values=values, choices=choices,
                connections=names, sizes=PAGE_SIZES, zone=zone, newer=newer, older=older,
                filtered=any(values[key] for key in ("who", "what", "connection", "session", "from", "until")),
                paged=before is not None or after is not None)
