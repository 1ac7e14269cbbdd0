"""What a committed transaction changed of the rows the launch path caches (connections, sessions), told to whoever
listens in this process: its read caches drop those entries at once, instead of serving them until they expire.

Every write of a connection or a session goes through ORM rows (`app.connections`, `repository.save_session`), so
the session's flush shows them; the only Core updates of sessions (`set_attendance_state`,
`finalize_ended_sessions`) touch the attendance state, which no cache holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession

from viltbridge.store.tables import ConnectionRow, SessionRow

_NOTES = "viltbridge.changed_rows"


@dataclass
class Changed:
    """Rows one transaction changed: connections by id, sessions by (connection id, external id)."""

    connections: set[int] = field(default_factory=set)
    sessions: set[tuple[int, str]] = field(default_factory=set)


Listener = Callable[[Changed], None]
_listeners: list[Listener] = []


def listen(listener: Listener) -> Callable[[], None]:
    """Call `listener` after each commit in this process that changed a connection or a session; returns what
    stops it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


def _note(session: OrmSession, *_: Any) -> None:
    changed: Changed = session.info.setdefault(_NOTES, Changed())
    for row in (*session.new, *session.dirty, *session.deleted):
        if isinstance(row, ConnectionRow) and row.id is not None:
            changed.connections.add(row.id)
        elif isinstance(row, SessionRow) and row.connection_id is not None:
            changed.sessions.add((row.connection_id, row.external_id))


def _tell(session: OrmSession) -> None:
    changed: Changed | None = session.info.pop(_NOTES, None)
    if changed is not None and (changed.connections or changed.sessions):
        for listener in list(_listeners):
            listener(changed)


def _forget(session: OrmSession, *_: Any) -> None:
    session.info.pop(_NOTES, None)


# In `after_flush` the session still lists the rows it has just written, now with their ids (a commit flushes
# first, so nothing escapes); `after_commit` tells; a rollback forgets.
sa.event.listen(OrmSession, "after_flush", _note)
sa.event.listen(OrmSession, "after_commit", _tell)
sa.event.listen(OrmSession, "after_rollback", _forget)
