"""Scheduling conflicts: the same instructor, or the same provider host account, booked twice at overlapping
times, across connections too. Pure: the callers bring the bookings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from viltbridge.core.emails import normalize_email
from viltbridge.core.provider import HOST_ACCOUNT


@dataclass(frozen=True)
class Booking:
    """One scheduled part as the conflict check sees it."""

    connection: str
    session_id: str  # the LMS SessionId
    title: str
    starts_at: datetime
    ends_at: datetime
    instructors: tuple[str, ...]
    host_account: str | None = None  # the provider account that hosts it (e.g. "zoom:<account>:<host>"), if any


@dataclass(frozen=True)
class Conflict:
    first: Booking
    second: Booking
    reason: str  # "instructor tess@example.com" or "host account zoom:…"

    def describe(self) -> str:
        overlap_start = max(self.first.starts_at, self.second.starts_at)
        overlap_end = min(self.first.ends_at, self.second.ends_at)
        minutes = int((overlap_end - overlap_start).total_seconds() // 60)
        return (f"{self.reason} is booked twice: '{self.first.title}' ({self.first.connection}/"
                f"{self.first.session_id}) and '{self.second.title}' ({self.second.connection}/"
                f"{self.second.session_id}) overlap by {minutes} min from {overlap_start:%Y-%m-%d %H:%M} UTC")


def host_account_of(provider: str | None, meeting_data: Mapping[str, Any] | None) -> str | None:
    """The `Booking.host_account` of a stored meeting: its provider and the account that hosts it."""
    host = (meeting_data or {}).get(HOST_ACCOUNT) if isinstance(meeting_data, Mapping) else None
    return f"{provider}:{host}" if host and provider else None


def _resources(booking: Booking) -> set[str]:
    found = {f"instructor {normalize_email(email)}" for email in booking.instructors if email.strip()}
    if booking.host_account:
        found.add(f"host account {booking.host_account}")
    return found


def find_conflicts(bookings: Iterable[Booking]) -> list[Conflict]:
    """Every pair of bookings that share an instructor or a host account and overlap in time (touching end to
    start is not an overlap), once per pair and resource, in start order. A sweep over start times: each booking
    is compared only with those still running when it starts."""
    ordered = sorted(bookings, key=lambda b: (b.starts_at, b.ends_at, b.connection, b.session_id))
    running: list[Booking] = []
    conflicts: list[Conflict] = []
    for booking in ordered:
        running = [other for other in running if other.ends_at > booking.starts_at]
        mine = _resources(booking)
        for other in running:
            for shared in sorted(mine & _resources(other)):
                conflicts.append(Conflict(other, booking, shared))
        if booking.ends_at > booking.starts_at:
            running.append(booking)
    return conflicts


def conflicts_with(target: Booking, others: Iterable[Booking]) -> list[Conflict]:
    """The conflicts of one booking (say, a session the LMS just saved) with the rest."""
    return [conflict for conflict in find_conflicts([target, *[o for o in others if o != target]])
            if target in (conflict.first, conflict.second)]
