"""The audit log: one row per change made through the console, the CLI or the LMS (who, what, when, before and
after). The LMS's attendance reads are not changes and are not kept here (`store.lms_reads` keeps them for the
part's timeline)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession

from viltbridge.core.audit_diff import mark_changed_secrets
from viltbridge.core.redaction import redact
from viltbridge.store.tables import AuditRow

# Written by earlier versions for every GetAttendees call; such rows stay on their part's timeline, not in the log.
LMS_READ_ACTIONS = ("lms.attendance",)


def record(db: OrmSession, now: datetime, actor: str, action: str, target: str, *,
           before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
    """Kept in the caller's transaction, so a change and its audit row commit (or roll back) together. Values
    that look secret are redacted: the log says that a secret changed, never what it is."""
    kept_after = None if after is None else mark_changed_secrets(before, after, redact(after))
    db.add(AuditRow(at=now, actor=actor, action=action, target=target,
                    before=redact(before) if before is not None else None, after=kept_after))


def recent(db: OrmSession, *, limit: int = 200, target: str | None = None) -> list[AuditRow]:
    query = sa.select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
    if target is not None:
        query = query.where(AuditRow.target == target)
    return list(db.scalars(query))


@dataclass(frozen=True)
class AuditFilter:
    """What the log page asks for; an empty field does not filter. Dates are instants (the page turns the
    viewer's days into them): `since` included, `until` excluded."""

    actor: str = ""
    action: str = ""
    connection: str = ""
    session: str = ""
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditRow]
    newer: int | None  # the id to page from towards newer rows (`after=`), None on the newest page
    older: int | None  # the id to page from towards older rows (`before=`), None on the oldest page


def _conditions(wanted: AuditFilter) -> list[sa.ColumnElement[bool]]:
    found: list[sa.ColumnElement[bool]] = [AuditRow.action.not_in(LMS_READ_ACTIONS)]
    if wanted.actor:
        found.append(AuditRow.actor == wanted.actor)
    if wanted.action:
        found.append(AuditRow.action == wanted.action)
    if wanted.connection and wanted.session:
        found.append(AuditRow.target == f"session:{wanted.connection}/{wanted.session}")
    elif wanted.connection:
        found.append(sa.or_(AuditRow.target == f"connection:{wanted.connection}",
                            AuditRow.target.startswith(f"session:{wanted.connection}/", autoescape=True)))
    elif wanted.session:
        found.append(sa.and_(AuditRow.target.startswith("session:"),
                             AuditRow.target.endswith(f"/{wanted.session}", autoescape=True)))
    if wanted.since is not None:
        found.append(AuditRow.at >= wanted.since)
    if wanted.until is not None:
        found.append(AuditRow.at < wanted.until)
    return found


def page(db: OrmSession, wanted: AuditFilter, *, size: int, before: int | None = None,
         after: int | None = None) -> AuditPage:
    """Newest first, `size` rows: the newest ones, those just older than id `before`, or those just newer than id
    `after`. Paged by id (keyset), so a row written while someone pages neither repeats nor goes missing."""
    conditions = _conditions(wanted)
    if after is not None:
        query = (sa.select(AuditRow).where(*conditions, AuditRow.id > after).order_by(AuditRow.id.asc())
                 .limit(size + 1))
        rows = list(db.scalars(query))
        more_newer = len(rows) > size
        rows = list(reversed(rows[:size]))
        more_older = True
    else:
        query = sa.select(AuditRow).where(*conditions).order_by(AuditRow.id.desc()).limit(size + 1)
        if before is not None:
            query = query.where(AuditRow.id < before)
        rows = list(db.scalars(query))
        more_older = len(rows) > size
        rows = rows[:size]
        more_newer = before is not None
    if not rows:
        return AuditPage([], None, None)
    if more_older and after is not None:
        more_older = _exists(db, conditions, AuditRow.id < rows[-1].id)
    if more_newer and after is None:
        more_newer = _exists(db, conditions, AuditRow.id > rows[0].id)
    return AuditPage(rows, rows[0].id if more_newer else None, rows[-1].id if more_older else None)


def _exists(db: OrmSession, conditions: list[sa.ColumnElement[bool]], bound: sa.ColumnElement[bool]) -> bool:
    return db.scalar(sa.select(AuditRow.id).where(*conditions, bound).limit(1)) is not None


@dataclass(frozen=True)
class AuditChoices:
    """The values the log holds, for the filter form's selects."""

    actors: list[str]
    actions: list[str]


def choices(db: OrmSession) -> AuditChoices:
    actors = db.scalars(sa.select(AuditRow.actor).where(AuditRow.action.not_in(LMS_READ_ACTIONS)).distinct()
                        .order_by(AuditRow.actor))
    actions = db.scalars(sa.select(AuditRow.action).where(AuditRow.action.not_in(LMS_READ_ACTIONS)).distinct()
                         .order_by(AuditRow.action))
    return AuditChoices(list(actors), list(actions))
