"""What an operator does to attendance outside the LMS contract (the CLI now, the console later): set the policy per
connection or per session, keep the alias table, read the decisions, export them."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession

from viltbridge import connections
from viltbridge.core.attendance import AttendancePolicy
from viltbridge.core.emails import checked_email
from viltbridge.core.errors import InvalidInput, NotFound
from viltbridge.store import attendance_ledger
from viltbridge.store.tables import AttendanceResultRow, ConnectionRow, SessionRow


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

EXPORT_FIELDS = ("connection", "session_id", "lo_id", "title", "starts_at", "ends_at", "email", "attended", "state",
                 "explanation", "computed_at")
# A cell a spreadsheet would run as a formula (OWASP "CSV injection"): shown as text instead.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


@dataclass(frozen=True)
class ExportFilter:
    connection: str | None = None
    session: str | None = None
    ended_from: datetime | None = None
    ended_until: datetime | None = None


def export_rows(db: OrmSession, wanted: ExportFilter) -> list[dict[str, Any]]:
    """One row per learner and part, as last decided, oldest part first."""
    query = (sa.select(ConnectionRow.name, SessionRow.external_id, SessionRow.lo_id, SessionRow.title,
                       SessionRow.starts_at, SessionRow.ends_at, AttendanceResultRow.email,
                       AttendanceResultRow.attended, AttendanceResultRow.state, AttendanceResultRow.explanation,
                       AttendanceResultRow.computed_at)
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
    if wanted.ended_from is not None:
        query = query.where(SessionRow.ends_at >= wanted.ended_from)
    if wanted.ended_until is not None:
        query = query.where(SessionRow.ends_at < wanted.ended_until)
    return [dict(zip(EXPORT_FIELDS, row, strict=True)) for row in db.execute(query)]


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def to_csv(rows: Iterable[dict[str, Any]]) -> str:
    """CSV with a header; no cell can start a spreadsheet formula."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_FIELDS)
    for row in rows:
        writer.writerow([_cell(row[field]) for field in EXPORT_FIELDS])
    return out.getvalue()


def to_json(rows: Iterable[dict[str, Any]]) -> str:
    def plain(value: Any) -> Any:
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(value, datetime) else value

    return json.dumps([{key: plain(value) for key, value in row.items()} for row in rows], indent=2) + "\n"
