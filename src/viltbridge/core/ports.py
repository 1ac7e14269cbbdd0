"""What the use cases (`viltbridge.app`) need from storage. The SQL implementation lives in `viltbridge.store`."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from viltbridge.core.attendance import AttendanceDecision, AttendanceOverride, LedgerSegment, Review
from viltbridge.core.models import (
    AttendanceState,
    Connection,
    Instructor,
    JobRequest,
    Launch,
    Registration,
    Session,
)
from viltbridge.core.provider import ProviderEvent
from viltbridge.core.schedule import Booking


class Store(Protocol):
    async def lock(self, key: str) -> None:
        """Serialise writers of one thing (a session, an instructor) until the transaction ends, so duplicate or
        racing requests run one after the other and the second sees what the first wrote."""
        ...

    async def get_connection(self, connection_id: int) -> Connection | None: ...

    async def find_instructor(self, connection_id: int, email: str) -> Instructor | None: ...

    async def is_active_instructor(self, connection_id: int, email: str) -> bool: ...

    async def save_instructor(self, instructor: Instructor) -> Instructor: ...

    async def rename_session_instructor(self, connection_id: int, old_email: str, new_email: str) -> int: ...

    async def find_session(self, connection_id: int, external_id: str) -> Session | None: ...

    async def get_session(self, session_id: int) -> Session | None: ...

    async def save_session(self, session: Session) -> Session: ...

    async def set_attendance_state(self, session_id: int, state: AttendanceState) -> None: ...

    async def record_launch(self, launch: Launch) -> None: ...

    async def last_personal_launch(self, session_id: int, email: str) -> Launch | None: ...

    async def launches_between(self, session_id: int, start: datetime, end: datetime) -> list[Launch]: ...

    async def registration(self, session_id: int, email: str, meeting_id: str) -> Registration | None:
        """The learner's link registered ahead of their click for the part's meeting `meeting_id`, if any."""
        ...

    async def save_registrations(self, registrations: list[Registration]) -> None:
        """Keep links registered ahead, replacing what a learner had for the part."""
        ...

    async def learners_to_register(self, session: Session) -> list[tuple[str, str]]:
        """(email, lms_email) of the learners who launched other parts of the part's multi-part session and have
        no personal link for this part's meeting yet (neither from a click nor registered ahead)."""
        ...

    async def other_parts(self, session: Session) -> list[Session]:
        """The other scheduled parts of the part's multi-part session (same `lo_id`), in the order they start."""
        ...

    async def bookings_between(self, start: datetime, end: datetime) -> list[Booking]:
        """Scheduled parts of every connection that overlap [start, end): what a new part may conflict with."""
        ...

    async def provider_events(self, connection_id: int, meeting_id: str) -> list[ProviderEvent]: ...

    async def enqueue_job(self, request: JobRequest) -> int:
        """Ask for background work in this transaction: it exists if and only if the transaction commits."""
        ...

    async def attendance_segments(self, session_id: int) -> list[LedgerSegment]:
        """Every segment the ledger holds for the part, from every source."""
        ...

    async def save_attendance_segments(self, session_id: int, segments: list[LedgerSegment], now: datetime) -> int:
        """Add new segments, update known ones; never removes any. Returns how many were new."""
        ...

    async def save_attendance_results(self, session_id: int, decisions: list[AttendanceDecision],
                                      reviews: list[Review], state: str, now: datetime) -> None: ...

    async def attendance_aliases(self, connection_id: int) -> dict[str, str]:
        """The connection's alias table: provider email (normalised) -> LMS email."""
        ...

    async def attendance_overrides(self, session_id: int) -> list[AttendanceOverride]:
        """Admins' decisions for learners of the part, with their reasons."""
        ...
