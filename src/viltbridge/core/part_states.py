"""The words for where a part stands, one vocabulary for every page, filter, export and the API docs.

A part's life is read from its dates and the clock (cancelled from its status): it is never stored, so it cannot
go stale. Its attendance says how far the evidence has come: nothing can be known before the class starts, then
the ledger is collecting, provisional (usable, may still change) and final.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from viltbridge.core.errors import InvalidInput
from viltbridge.core.models import AttendanceState, SessionStatus


class PartLife(StrEnum):
    SCHEDULED = "scheduled"  # not started yet
    LIVE = "live"  # between its start and its end
    ENDED = "ended"
    CANCELLED = "cancelled"


class AttendancePhase(StrEnum):
    NOT_YET = "not yet"  # the class has not started: there is nothing to collect
    COLLECTING = AttendanceState.COLLECTING.value
    PROVISIONAL = AttendanceState.PROVISIONAL.value
    FINAL = AttendanceState.FINAL.value


PART_LIFE_MEANINGS = {
    PartLife.SCHEDULED: "has not started yet",
    PartLife.LIVE: "is running now",
    PartLife.ENDED: "is over",
    PartLife.CANCELLED: "was cancelled by the LMS or an admin",
}
ATTENDANCE_MEANINGS = {
    AttendancePhase.NOT_YET: "the class has not started, so there is no evidence yet",
    AttendancePhase.COLLECTING: "evidence is coming in; nobody is decided yet",
    AttendancePhase.PROVISIONAL: "decided from the evidence so far; may still change",
    AttendancePhase.FINAL: "settled: it will not change unless an admin overrides it",
}

# Filter values that older console links carried: they keep working.
_OLD_ATTENDANCE_WORDS = {"pending": AttendancePhase.NOT_YET, "not-yet": AttendancePhase.NOT_YET,
                         "not_yet": AttendancePhase.NOT_YET}


def part_life(status: str, starts_at: datetime, ends_at: datetime, now: datetime) -> PartLife:
    if status == SessionStatus.CANCELLED:
        return PartLife.CANCELLED
    if now < starts_at:
        return PartLife.SCHEDULED
    return PartLife.LIVE if now < ends_at else PartLife.ENDED


def attendance_phase(state: str, starts_at: datetime, now: datetime) -> AttendancePhase:
    return AttendancePhase.NOT_YET if now < starts_at else AttendancePhase(state)


def part_life_named(word: str) -> PartLife:
    """A filter's value as a part's life; InvalidInput lists the words there are."""
    try:
        return PartLife(word.strip().lower())
    except ValueError:
        raise InvalidInput(f"Status '{word}' is not one of {', '.join(PartLife)}: pick one of them, or any.") from None


def attendance_phase_named(word: str) -> AttendancePhase:
    """A filter's value as an attendance phase (older words mapped); InvalidInput lists the words there are."""
    cleaned = word.strip().lower()
    if cleaned in _OLD_ATTENDANCE_WORDS:
        return _OLD_ATTENDANCE_WORDS[cleaned]
    try:
        return AttendancePhase(cleaned)
    except ValueError:
        raise InvalidInput(f"Attendance '{word}' is not one of {', '.join(AttendancePhase)}: pick one of them, or "
                           "any.") from None


def vocabulary_text() -> str:
    """Both vocabularies in a sentence each, for the API docs."""
    life = "; ".join(f"*{word}* {meaning}" for word, meaning in PART_LIFE_MEANINGS.items())
    attendance = "; ".join(f"*{word}*: {meaning}" for word, meaning in ATTENDANCE_MEANINGS.items())
    return f"A part's life: {life}. Its attendance: {attendance}."
