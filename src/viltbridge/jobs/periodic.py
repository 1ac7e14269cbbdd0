"""Periodic upkeep steps (the job runner's upkeep calls them once per slot); each is idempotent."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session as OrmSession

from viltbridge.app.context import AppContext
from viltbridge.core.errors import DomainError
from viltbridge.core.provider import AttendanceSource
from viltbridge.security.crypto import KeyringError
from viltbridge.store import repository

log = logging.getLogger("viltbridge.jobs")


def finalize_attendance(db: OrmSession, ctx: AppContext, now: datetime) -> int:
    """Mark launch-only attendance final once a part has ended: no later click can change it.

    The LMS may never ask again, so the state must not depend on its calls. Providers with attendance reports
    decide finality from their reports instead.
    """
    launch_only: list[int] = []
    for row in repository.all_connection_rows(db):
        try:
            provider = ctx.providers.for_connection(repository.connection_from_row(row, ctx.keyring))
        except (DomainError, KeyringError) as exc:  # one broken connection must not stop the others' upkeep
            log.warning("upkeep skips connection %s: %s", row.name, getattr(exc, "message", exc))
            continue
        if provider.capabilities.attendance is AttendanceSource.LAUNCH_ONLY:
            launch_only.append(row.id)
    return repository.finalize_ended_sessions(db, launch_only, now)
