"""Who attended, and why: decisions a person can read.

This module holds the launch-evidence rule used when a provider can report nothing better (the `link`
provider): a person counts as attended when they clicked through their launch link while the class was open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from viltbridge.core.models import AttendanceState, Launch, Role


@dataclass(frozen=True)
class AttendanceDecision:
    email: str
    attended: bool
    explanation: str


def decide_from_launches(
    launches: list[Launch], *, opens_at: datetime, ends_at: datetime
) -> list[AttendanceDecision]:
    """One decision per learner who launched, in order of first launch; hosts are not attendees.

    People are told apart by normalised email; each is reported in the spelling of their latest launch.
    """
    first_launch: dict[str, datetime] = {}
    count: dict[str, int] = {}
    spelling: dict[str, str] = {}
    for launch in sorted(launches, key=lambda item: item.clicked_at):
        if launch.role is not Role.ATTENDEE or not opens_at <= launch.clicked_at <= ends_at:
            continue
        first_launch.setdefault(launch.email, launch.clicked_at)
        count[launch.email] = count.get(launch.email, 0) + 1
        spelling[launch.email] = launch.lms_email
    return [
        AttendanceDecision(
            email=spelling[email],
            attended=True,
            explanation=(
                f"launched {count[email]}x, first at {when:%Y-%m-%d %H:%M} UTC, while the class was open "
                f"({opens_at:%H:%M}-{ends_at:%H:%M} UTC); evidence: launch only, the provider reports no attendance"
            ),
        )
        for email, when in first_launch.items()
    ]


def launch_only_state(now: datetime, ends_at: datetime) -> AttendanceState:
    """Launch evidence is provisional until the class ends; after that no click can count any more."""
    return AttendanceState.FINAL if now > ends_at else AttendanceState.PROVISIONAL
