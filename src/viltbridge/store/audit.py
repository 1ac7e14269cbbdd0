"""The audit log: one row per change made through the console or the CLI (who, what, when, before and after)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession

from viltbridge.core.redaction import redact
from viltbridge.store.tables import AuditRow


def record(db: OrmSession, now: datetime, actor: str, action: str, target: str, *,
           before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
    """Kept in the caller's transaction, so a change and its audit row commit (or roll back) together. Values
    that look secret are redacted: the log says that a secret changed, never what it is."""
    db.add(AuditRow(at=now, actor=actor, action=action, target=target,
                    before=redact(before) if before is not None else None,
                    after=redact(after) if after is not None else None))


def recent(db: OrmSession, *, limit: int = 200, target: str | None = None) -> list[AuditRow]:
    query = sa.select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
    if target is not None:
        query = query.where(AuditRow.target == target)
    return list(db.scalars(query))
