"""What an operator does to attendance outside the LMS contract: set the policy per connection or per session, keep
the alias table, read the decisions, export them (the CLI and the console); and, from the console, one part's
attendance facts, an override for one learner, a row to review resolved, attendance computed again."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession

from viltbridge.app import connections
from viltbridge.app.attendance import attendance_policy, matched_intervals
from viltbridge.app.sessions import named_part
from viltbridge.app.uow import UnitOfWork, unit_of_work
from viltbridge.core import jobs
from viltbridge.core.attendance import AttendanceOverride, AttendancePolicy, Interval, Review, rolled_up
from viltbridge.core.emails import checked_email, normalize_email
from viltbridge.core.errors import InvalidInput, NotFound
from viltbridge.core.part_states import part_life
from viltbridge.store import attendance_ledger, console_views, repository
from viltbridge.store.attendance_ledger import StoredResult
from viltbridge.store.tables import AttendanceResultRow, ConnectionRow, SessionRow

if TYPE_CHECKING:
    from viltbridge.app.context import AppContext


def parse_policy_pairs(pairs: dict[str, str]) -> dict[str, Any]:
    """`k=v` strings as typed values: numbers and true/false as JSON reads them, anything else as text."""
    typed: dict[str, Any] = {}
    for key, raw in pairs.items():
        try:
            typed[key] = json.loads(raw)
        except ValueError:
            typed[key] = raw
    return typed


def _session_row(db: OrmSession, connection: ConnectionRow, external_id: str) -> SessionRow:
    row = db.execute(sa.select(SessionRow).where(SessionRow.connection_id == connection.id,
                                                 SessionRow.external_id == external_id)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"Connection '{connection.name}' has no session '{external_id}'.")
    return row


def set_policy(db: OrmSession, name: str, changes: dict[str, Any], *, session: str | None = None,
               reset: bool = False) -> AttendancePolicy:
    """Change the connection's policy, or one session's overrides; returns the policy now in force there. Checked
    before anything is stored: a wrong value changes nothing."""
    connection = connections.require(db, name)
    base = dict(connection.attendance_policy or {})
    if session is None:
        policy_settings = {} if reset else {**base, **changes}
        policy = AttendancePolicy.from_settings(policy_settings)
        connection.attendance_policy = policy_settings
        db.flush()
        return policy
    row = _session_row(db, connection, session)
    overrides = {} if reset else {**(row.attendance_policy or {}), **changes}
    policy = AttendancePolicy.from_settings(base).with_overrides(overrides)
    row.attendance_policy = overrides
    db.flush()
    return policy


def policy_of(db: OrmSession, name: str, session: str | None = None) -> AttendancePolicy:
    connection = connections.require(db, name)
    policy = AttendancePolicy.from_settings(connection.attendance_policy or {})
    if session is not None:
        policy = policy.with_overrides(_session_row(db, connection, session).attendance_policy or {})
    return policy


def set_alias(db: OrmSession, name: str, provider_email: str, lms_email: str) -> None:
    connection = connections.require(db, name)
    attendance_ledger.set_alias(db, connection.id, checked_email(provider_email, field="provider email"),
                                checked_email(lms_email, field="LMS email"), datetime.now(UTC))


def remove_alias(db: OrmSession, name: str, provider_email: str) -> None:
    connection = connections.require(db, name)
    if not attendance_ledger.remove_alias(db, connection.id, provider_email):
        raise NotFound(f"Connection '{name}' has no alias for {provider_email}.")


def aliases(db: OrmSession, name: str) -> dict[str, str]:
    return attendance_ledger.aliases(db, connections.require(db, name).id)


# --- exports -------------------------------------------------------------------------------------------------

EXPORT_FIELDS = ("connection", "session_id", "lo_id", "part_number", "part_count", "title", "starts_at", "ends_at",
                 "part_status", "email", "attended", "state", "explanation", "computed_at")
_COMPUTED_FIELDS = ("part_number", "part_count", "part_status")
_QUERIED_FIELDS = tuple(field for field in EXPORT_FIELDS if field not in _COMPUTED_FIELDS)
# A cell a spreadsheet would run as a formula (OWASP "CSV injection"): shown as text instead.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


@dataclass(frozen=True)
class ExportFilter:
    connection: str | None = None
    session: str | None = None
    ended_from: datetime | None = None
    ended_until: datetime | None = None
    lo_id: str | None = None  # the parts of one multi-part session (with `connection`)
    now: datetime | None = None  # when the export is made, for each part's status; None: the wall clock


def export_rows(db: OrmSession, wanted: ExportFilter) -> list[dict[str, Any]]:
    """One row per learner and part, as last decided, oldest part first; a part of a multi-part session says
    which (`part_number` of `part_count`, by start; both empty for a session of one part); `part_status` is the
    part's life at `wanted.now` in the console's words (`core.part_states`)."""
    query = (sa.select(ConnectionRow.name, SessionRow.external_id, SessionRow.lo_id, SessionRow.title,
                       SessionRow.starts_at, SessionRow.ends_at, AttendanceResultRow.email,
                       AttendanceResultRow.attended, AttendanceResultRow.state, AttendanceResultRow.explanation,
                       AttendanceResultRow.computed_at, SessionRow.id, SessionRow.connection_id, SessionRow.status)
             .join(SessionRow, SessionRow.id == AttendanceResultRow.session_id)
             .join(ConnectionRow, ConnectionRow.id == SessionRow.connection_id)
             .order_by(SessionRow.ends_at, SessionRow.external_id, AttendanceResultRow.email_key))
    if wanted.connection is not None:
        connections.require(db, wanted.connection)
        query = query.where(ConnectionRow.name == wanted.connection)
    if wanted.session is not None:
        if wanted.connection is None:
            raise InvalidInput("A session id is unique only within its connection: name the connection too.")
        query = query.where(SessionRow.external_id == wanted.session)
    if wanted.lo_id is not None:
        if wanted.connection is None:
            raise InvalidInput("An LoId is unique only within its connection: name the connection too.")
        query = query.where(SessionRow.lo_id == wanted.lo_id)
    if wanted.ended_from is not None:
        query = query.where(SessionRow.ends_at >= wanted.ended_from)
    if wanted.ended_until is not None:
        query = query.where(SessionRow.ends_at < wanted.ended_until)
    found = db.execute(query).all()
    places = console_views.places_in_sessions(db, {(row.connection_id, row.lo_id) for row in found if row.lo_id})
    now = wanted.now or datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for row in found:
        place = places.get(row.id)
        exported = dict(zip(_QUERIED_FIELDS, row[:len(_QUERIED_FIELDS)], strict=True))
        exported.update(part_number=place.number if place else None, part_count=place.count if place else None,
                        part_status=part_life(row.status, row.starts_at, row.ends_at, now).value)
        rows.append({field: exported[field] for field in EXPORT_FIELDS})
    return rows


SESSION_EXPORT_FIELDS = ("connection", "lo_id", "title", "parts", "email", "attended", "state", "explanation")


def export_session_rows(db: OrmSession, wanted: ExportFilter) -> list[dict[str, Any]]:
    """One row per learner and multi-part session (parts sharing an LoId; a part without one is its own session),
    combined by the connection's `parts` rule: `any` part, else every part (`core.attendance.rolled_up`). A learner
    with no decision for a part (cancelled parts aside) did not attend it; the roll-up is final only when every
    part is."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in export_rows(db, wanted):
        groups.setdefault((row["connection"], row["lo_id"] or row["session_id"]), []).append(row)
    rules = {name: policy_of(db, name).parts for name in {connection for connection, _ in groups}}
    rolled: list[dict[str, Any]] = []
    for (connection, lo_id), rows in groups.items():
        decided_parts = {(row["starts_at"], row["session_id"]) for row in rows}
        # A part nobody has a decision for yet counts too (not attended, not final): else a session of three
        # parts would roll up over the two already decided.
        parts = sorted(decided_parts | set(console_views.parts_going_ahead(db, connection, lo_id)
                                           if rows[0]["lo_id"] else ()))
        finals = {row["session_id"]: row["state"] == "final" for row in rows}
        by_learner: dict[str, dict[str, dict[str, Any]]] = {}
        for row in rows:
            by_learner.setdefault(row["email"].lower(), {})[row["session_id"]] = row
        rule = rules[connection]
        for decided in by_learner.values():
            outcomes = [bool(decided[part]["attended"]) if part in decided else False for _, part in parts]
            attended = rolled_up(outcomes, rule)
            words = "; ".join(f"{part}: {'attended' if ok else 'not attended'}"
                              for (_, part), ok in zip(parts, outcomes, strict=True))
            rolled.append({
                "connection": connection, "lo_id": lo_id, "title": rows[0]["title"], "parts": len(parts),
                "email": next(iter(decided.values()))["email"], "attended": attended,
                "state": "final" if all(finals.get(part, False) for _, part in parts) else "provisional",
                "explanation": f"{sum(outcomes)} of {len(parts)} part(s) attended ({words}); rule: "
                               f"{'any part' if rule == 'any' else 'every part'}",
            })
    return rolled


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def to_csv(rows: Iterable[dict[str, Any]], fields: tuple[str, ...] = EXPORT_FIELDS) -> str:
    """CSV with a header; no cell can start a spreadsheet formula."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(fields)
    for row in rows:
        writer.writerow([_cell(row[field]) for field in fields])
    return out.getvalue()


def to_json(rows: Iterable[dict[str, Any]]) -> str:
    def plain(value: Any) -> Any:
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(value, datetime) else value

    return json.dumps([{key: plain(value) for key, value in row.items()} for row in rows], indent=2) + "\n"


# --- one part, from the console ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartAttendance:
    """One part's attendance as the ledger holds it now (no provider call): decisions, and per learner the time
    the identity rules tie to them, judged by `policy`."""

    connection: ConnectionRow
    part: SessionRow
    results: list[StoredResult]
    intervals: dict[str, list[Interval]]
    policy: AttendancePolicy
    launches: dict[str, list[datetime]]  # attendees' clicks: the only evidence some providers leave
    siblings: list[SessionRow]  # every part of its multi-part session by start, this one included
    session_results: list[dict[str, Any]]  # per learner, the session rolled up over its parts (multi-part only)

    def place(self) -> int:
        """This part's number among its siblings, from 1."""
        return next(number for number, row in enumerate(self.siblings, start=1) if row.id == self.part.id)


async def part_attendance(ctx: AppContext, connection: str, external_id: str) -> PartAttendance | None:
    """None when the connection has no such part."""
    async with unit_of_work(ctx) as work:  # ORM reads: console traffic is light
        return await _part_attendance(work, connection, external_id)


@dataclass(frozen=True)
class PartReview:
    """What an admin reviews of one part: its attendance, everything that happened to it, the rows the identity
    rules could not tie to a learner, the learners, and the overrides set."""

    attendance: PartAttendance
    timeline: list[console_views.TimelineEntry]
    reviews: list[Review]
    learners: list[str]
    overrides: list[AttendanceOverride]


async def part_review(ctx: AppContext, connection: str, external_id: str) -> PartReview | None:
    """None when the connection has no such part."""
    async with unit_of_work(ctx) as work:  # ORM reads: console traffic is light
        facts = await _part_attendance(work, connection, external_id)
        if facts is None:
            return None
        part_id = facts.part.id
        return PartReview(facts, await work.db.run_sync(console_views.timeline, connection, facts.part),
                          await work.db.run_sync(attendance_ledger.reviews, part_id),
                          await work.db.run_sync(console_views.learners, part_id),
                          await work.db.run_sync(attendance_ledger.overrides, part_id))


async def _part_attendance(work: UnitOfWork, connection: str, external_id: str) -> PartAttendance | None:
    found = await work.db.run_sync(console_views.session, connection, external_id)
    if found is None:
        return None
    conn_row, row = found
    results = await work.db.run_sync(attendance_ledger.results, row.id)
    lms_connection = repository.connection_from_row(conn_row, work.ctx.keyring)
    part = await work.store.find_session(lms_connection.id, row.external_id)
    assert part is not None
    intervals = await matched_intervals(work.store, part)
    siblings = await work.db.run_sync(console_views.sibling_parts, row)
    rolled = [] if len(siblings) < 2 else await work.db.run_sync(
        export_session_rows, ExportFilter(connection=connection, lo_id=row.lo_id, now=work.ctx.clock.now()))
    return PartAttendance(conn_row, row, results, intervals, attendance_policy(lms_connection, part),
                          await work.db.run_sync(console_views.launch_times, row.id), siblings, rolled)


class InvalidField(InvalidInput):
    """Input refused because of one field of a form, which `field` names (the console shows the message beside it
    and keeps what was typed)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


async def _learner(work: UnitOfWork, part: SessionRow, email: str, field: str, hint: str = "") -> str:
    """`email` as the LMS spells it, when it is a learner of the part (launched as an attendee, or decided)."""
    learners = await work.db.run_sync(console_views.learners, part.id)
    spelled = {learner.lower(): learner for learner in learners}
    if email.strip().lower() not in spelled:
        raise InvalidField(f"{email} is not a learner of this session (launched or decided){hint}.", field)
    return spelled[email.strip().lower()]


async def _recompute(work: UnitOfWork, conn_row: ConnectionRow, part: SessionRow) -> int:
    """Attendance computed again in the background, final parts too (from the ledger alone once final)."""
    return await work.store.enqueue_job(jobs.recompute_attendance(part.id, conn_row.id, work.ctx.clock.now()))


async def resync(ctx: AppContext, connection: str, external_id: str, *, actor: str) -> int:
    """Ask for attendance again now (from the ledger and, unless final, the provider); the job's id."""
    async with unit_of_work(ctx) as work:
        conn_row, part = await named_part(work, connection, external_id)
        job_id = await _recompute(work, conn_row, part)
        await work.audit(actor, "attendance.resync", f"session:{connection}/{external_id}", after={"job": job_id})
    return job_id


async def override(ctx: AppContext, connection: str, external_id: str, *, email: str, attended: str, reason: str,
                   actor: str) -> None:
    """Set (`attended` yes or no, with the reason) or clear an admin's decision for one learner; attendance is
    computed again with it, and the explanation keeps what the evidence said."""
    choice = attended.strip().lower()
    if choice not in ("yes", "no", "clear"):
        raise InvalidField("Choose attended yes, no, or clear (back to what the evidence says).", "attended")
    if choice != "clear" and len(reason.strip()) < 3:
        raise InvalidField("Say why (e.g. 'joined by phone, confirmed by the instructor'): an override without a "
                           "reason cannot be explained later.", "reason")
    async with unit_of_work(ctx) as work:
        conn_row, part = await named_part(work, connection, external_id)
        lms_email = await _learner(work, part, email, "email")
        before = await _decision_replaced(work, part.id, lms_email)
        if choice == "clear":
            await work.db.run_sync(attendance_ledger.remove_override, part.id, lms_email)
            after: dict[str, object] = {"email": lms_email, "decided_by": "the evidence (override cleared)"}
        else:
            decision = AttendanceOverride(lms_email, choice == "yes", reason.strip(), actor)
            await work.db.run_sync(attendance_ledger.set_override, part.id, decision, ctx.clock.now())
            after = {"email": lms_email, "attended": choice == "yes", "decided_by": f"override by {actor}",
                     "reason": reason.strip()}
        await _recompute(work, conn_row, part)
        await work.audit(actor, "attendance.override", f"session:{connection}/{external_id}", before=before,
                         after=after)


async def _decision_replaced(work: UnitOfWork, part_id: int, lms_email: str) -> dict[str, object]:
    """What an override replaces, for the audit log: an earlier override, else the decision from the evidence."""
    key = normalize_email(lms_email)
    for earlier in await work.db.run_sync(attendance_ledger.overrides, part_id):
        if normalize_email(earlier.email) == key:
            return {"email": lms_email, "attended": earlier.attended, "decided_by": f"override by {earlier.actor}",
                    "reason": earlier.reason}
    for result in await work.db.run_sync(attendance_ledger.results, part_id):
        if normalize_email(result.email) == key:
            return {"email": lms_email, "attended": result.attended, "decided_by": "the evidence",
                    "reason": result.explanation}
    return {"email": lms_email, "attended": "not decided yet", "decided_by": "nobody yet"}


async def resolve_review(ctx: AppContext, connection: str, external_id: str, *, provider_email: str, lms_email: str,
                         actor: str) -> None:
    """A row to review says who it is at the provider (an email); the admin says which learner that is. Kept as
    the connection's alias (the table `viltbridge attendance alias` keeps), audited, and the part's attendance is
    computed again with it."""
    async with unit_of_work(ctx) as work:
        conn_row, part = await named_part(work, connection, external_id)
        await _learner(work, part, lms_email, "lms_email", "; pick one of the listed learners")
        await work.db.run_sync(set_alias, connection, provider_email, lms_email)
        job_id = await _recompute(work, conn_row, part)
        await work.audit(actor, "attendance.resolve", f"session:{connection}/{external_id}",
                         after={"provider_email": provider_email, "lms_email": lms_email, "job": job_id})
