"""The LMS's attendance reads of a part (GetAttendees), for the part's timeline: who asked, when, with which
correlation id, and what they were told. Reads are not changes, so they stay out of the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session as OrmSession

from viltbridge.store.tables import LmsReadRow


def record(db: OrmSession, session_id: int, now: datetime, actor: str, action: str, details: dict[str, Any]) -> None:
    db.add(LmsReadRow(session_id=session_id, at=now, actor=actor, action=action, details=details))

