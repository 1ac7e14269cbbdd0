"""The attendance ledger in SQL: segments (kept once, never deleted), the latest decisions and review rows per
part, and the connection's alias table. Sync functions over a SQLAlchemy `Session`, like the repositories."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession

from viltbridge.core.attendance import AttendanceDecision, AttendanceOverride, LedgerSegment, Review
from viltbridge.core.emails import normalize_email
from viltbridge.core.provider import ParticipantSegment
from viltbridge.store.db import Readable
from viltbridge.store.tables import (
    AttendanceAliasRow,
    AttendanceOverrideRow,
    AttendanceResultRow,
    AttendanceReviewRow,
    AttendanceSegmentRow,
)

_SEGMENTS = cast(sa.Table, AttendanceSegmentRow.__table__)
_RESULTS = cast(sa.Table, AttendanceResultRow.__table__)
_REVIEWS = cast(sa.Table, AttendanceReviewRow.__table__)
_ALIASES = cast(sa.Table, AttendanceAliasRow.__table__)
_OVERRIDES = cast(sa.Table, AttendanceOverrideRow.__table__)


@dataclass(frozen=True)
class StoredResult:
    email: str
    attended: bool
    explanation: str
    state: str
    computed_at: datetime


def _segment(row: Any) -> LedgerSegment:
    return LedgerSegment(row.source, ParticipantSegment(
        participant_key=row.participant_key, joined_at=row.joined_at, left_at=row.left_at, email=row.email,
        display_name=row.display_name, evidence=dict(row.evidence or {}), instance=row.instance))


def segments(db: Readable, session_id: int) -> list[LedgerSegment]:
    rows = db.connection().execute(sa.select(_SEGMENTS).where(_SEGMENTS.c.session_id == session_id)
                                   .order_by(_SEGMENTS.c.joined_at, _SEGMENTS.c.id))
    return [_segment(row) for row in rows]


def save_segments(db: OrmSession, session_id: int, items: Iterable[LedgerSegment], now: datetime) -> int:
    """Add what is new and update what changed (a leave learned later); returns how many rows were added."""
    known = {(row.source, row.dedupe_key): row for row in db.execute(
        sa.select(_SEGMENTS.c.id, _SEGMENTS.c.source, _SEGMENTS.c.dedupe_key, _SEGMENTS.c.left_at,
                  _SEGMENTS.c.evidence).where(_SEGMENTS.c.session_id == session_id))}
    new_rows = []
    for item in {(item.source, item.key): item for item in items}.values():
        segment = item.segment
        values = {"left_at": segment.left_at, "email": segment.email, "display_name": segment.display_name,
                  "evidence": dict(segment.evidence), "participant_key": segment.participant_key[:200]}
        existing = known.get((item.source, item.key))
        if existing is None:
            new_rows.append({"session_id": session_id, "source": item.source, "instance": segment.instance[:200],
                             "dedupe_key": item.key, "joined_at": segment.joined_at, "first_seen_at": now,
                             "updated_at": now, **values})
        elif existing.left_at != segment.left_at or existing.evidence != values["evidence"]:
            db.execute(sa.update(_SEGMENTS).where(_SEGMENTS.c.id == existing.id).values(updated_at=now, **values))
    if new_rows:  # one statement for all of them: a report's rows arrive together
        db.execute(sa.insert(_SEGMENTS), new_rows)
    return len(new_rows)


def save_results(db: OrmSession, session_id: int, decisions: Iterable[AttendanceDecision],
                 reviews: Iterable[Review], state: str, now: datetime) -> None:
    """Replace the part's decisions and review rows with the latest computation."""
    db.execute(sa.delete(_RESULTS).where(_RESULTS.c.session_id == session_id))
    db.execute(sa.delete(_REVIEWS).where(_REVIEWS.c.session_id == session_id))
    rows = {normalize_email(d.email): d for d in decisions}
    if rows:
        db.execute(sa.insert(_RESULTS), [
            {"session_id": session_id, "email_key": key, "email": d.email, "attended": d.attended,
             "explanation": d.explanation, "state": state, "computed_at": now} for key, d in rows.items()])
    review_rows = [{"session_id": session_id, "kind": r.kind, "reason": r.reason,
                    "display_name": r.segment.display_name, "email": r.segment.email,
                    "joined_at": r.segment.joined_at, "left_at": r.segment.left_at,
                    "evidence": dict(r.segment.evidence)} for r in reviews]
    if review_rows:
        db.execute(sa.insert(_REVIEWS), review_rows)


def results(db: Readable, session_id: int) -> list[StoredResult]:
    rows = db.connection().execute(sa.select(_RESULTS).where(_RESULTS.c.session_id == session_id)
                                   .order_by(_RESULTS.c.email_key))
    return [StoredResult(r.email, r.attended, r.explanation, r.state, r.computed_at) for r in rows]


def reviews(db: Readable, session_id: int) -> list[Review]:
    rows = db.connection().execute(sa.select(_REVIEWS).where(_REVIEWS.c.session_id == session_id)
                                   .order_by(_REVIEWS.c.joined_at, _REVIEWS.c.id))
    return [Review(r.kind, r.reason, ParticipantSegment(
        participant_key="", joined_at=r.joined_at, left_at=r.left_at, email=r.email, display_name=r.display_name,
        evidence=dict(r.evidence or {}))) for r in rows]


def aliases(db: Readable, connection_id: int) -> dict[str, str]:
    rows = db.connection().execute(sa.select(_ALIASES.c.provider_email, _ALIASES.c.lms_email)
                                   .where(_ALIASES.c.connection_id == connection_id))
    return {row.provider_email: row.lms_email for row in rows}


def set_alias(db: OrmSession, connection_id: int, provider_email: str, lms_email: str, now: datetime) -> None:
    key = normalize_email(provider_email)
    db.execute(sa.delete(_ALIASES).where(_ALIASES.c.connection_id == connection_id,
                                         _ALIASES.c.provider_email == key))
    db.execute(sa.insert(_ALIASES).values(connection_id=connection_id, provider_email=key,
                                          lms_email=lms_email.strip(), created_at=now))


def remove_alias(db: OrmSession, connection_id: int, provider_email: str) -> bool:
    result = db.execute(sa.delete(_ALIASES).where(_ALIASES.c.connection_id == connection_id,
                                                  _ALIASES.c.provider_email == normalize_email(provider_email)))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def overrides(db: Readable, session_id: int) -> list[AttendanceOverride]:
    rows = db.connection().execute(sa.select(_OVERRIDES).where(_OVERRIDES.c.session_id == session_id)
                                   .order_by(_OVERRIDES.c.email_key))
    return [AttendanceOverride(row.email, bool(row.attended), row.reason, row.actor) for row in rows]


def set_override(db: OrmSession, session_id: int, override: AttendanceOverride, now: datetime) -> None:
    key = normalize_email(override.email)
    db.execute(sa.delete(_OVERRIDES).where(_OVERRIDES.c.session_id == session_id, _OVERRIDES.c.email_key == key))
    db.execute(sa.insert(_OVERRIDES).values(session_id=session_id, email_key=key, email=override.email.strip(),
                                            attended=override.attended, reason=override.reason,
                                            actor=override.actor, at=now))


def remove_override(db: OrmSession, session_id: int, email: str) -> bool:
    result = db.execute(sa.delete(_OVERRIDES).where(_OVERRIDES.c.session_id == session_id,
                                                    _OVERRIDES.c.email_key == normalize_email(email)))
    return bool(result.rowcount)  # type: ignore[attr-defined]
