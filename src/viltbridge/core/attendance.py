"""Who attended, and why: decisions a person can read.

Two sources of evidence. Providers with a participants report give segments, tied to LMS emails through what the
launch ledger knows (identity first, never a guess) and judged by a readable policy. Providers that report nothing
(the `link` provider) leave launch evidence: a person counts when they clicked through their link while the class
was open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from viltbridge.core.emails import normalize_email
from viltbridge.core.models import AttendanceState, Launch, Role
from viltbridge.core.provider import ParticipantSegment


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


# --- report-based attendance: segments, identity, policy ------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime


def merge_intervals(intervals: list[Interval]) -> list[Interval]:
    """The union of intervals, sorted; overlapping and touching ones are merged. Zero-length ones add nothing."""
    merged: list[Interval] = []
    for interval in sorted(intervals, key=lambda item: (item.start, item.end)):
        if interval.end <= interval.start:
            continue
        if merged and interval.start <= merged[-1].end:
            if interval.end > merged[-1].end:
                merged[-1] = Interval(merged[-1].start, interval.end)
        else:
            merged.append(interval)
    return merged


def presence_within(intervals: list[Interval], start: datetime, end: datetime) -> timedelta:
    """How long the union of `intervals` covers [start, end]: reconnects and overlapping devices count once."""
    total = timedelta(0)
    for interval in merge_intervals(intervals):
        overlap = min(interval.end, end) - max(interval.start, start)
        if overlap > timedelta(0):
            total += overlap
    return total


@dataclass(frozen=True)
class MatchedSegment:
    """A provider segment tied to an LMS email, with the rule that tied it."""

    email: str
    interval: Interval
    rule: str  # registrant_id | display_name_tag | email


@dataclass(frozen=True)
class LaunchIdentity:
    """What the launch ledger knows about one person: how their links identified them to the provider."""

    lms_email: str
    registrant_ids: frozenset[str]
    name_tags: frozenset[str]


def match_segments(
    segments: list[ParticipantSegment], people: dict[str, LaunchIdentity], ends_at: datetime
) -> tuple[list[MatchedSegment], list[ParticipantSegment]]:
    """Tie each segment to a launched person by the strongest evidence: the registrant id their personal link
    carried, then the name tag of a fallback link, then a provider email equal to their LMS email. Segments nothing
    ties are returned apart (for review), never guessed. An open segment counts until the scheduled end."""
    by_registrant = {rid: key for key, person in people.items() for rid in person.registrant_ids}
    by_tag = {tag: key for key, person in people.items() for tag in person.name_tags}
    matched: list[MatchedSegment] = []
    unmatched: list[ParticipantSegment] = []
    for segment in segments:
        registrant = str(segment.evidence.get("registrant_id") or "")
        name = segment.display_name or ""
        email = normalize_email(segment.email) if segment.email else ""
        key, rule = None, ""
        words = set(name.split())
        if registrant and registrant in by_registrant:
            key, rule = by_registrant[registrant], "registrant_id"
        elif (tag := next((t for t in by_tag if t in words), None)) is not None:
            key, rule = by_tag[tag], "display_name_tag"
            if email and email in people and email != key:
                key = None  # a tag that contradicts the signed-in account: someone else's tag, do not credit
        elif email and email in people:
            key, rule = email, "email"
        if key is None:
            unmatched.append(segment)
            continue
        end = segment.left_at or max(ends_at, segment.joined_at)
        matched.append(MatchedSegment(people[key].lms_email, Interval(segment.joined_at, end), rule))
    return matched, unmatched


@dataclass(frozen=True)
class AttendancePolicy:
    """Attended when present for at least `min_percent` of the scheduled part, counting from `grace_minutes`
    before the start to the scheduled end (time after the end does not count)."""

    min_percent: int = 75
    grace_minutes: int = 10


def decide_from_segments(
    matched: list[MatchedSegment], *, starts_at: datetime, ends_at: datetime, policy: AttendancePolicy
) -> list[AttendanceDecision]:
    """One decision per matched person, with the calculation spelled out."""
    by_person: dict[str, list[MatchedSegment]] = {}
    for item in matched:
        by_person.setdefault(item.email, []).append(item)
    window_start = starts_at - timedelta(minutes=policy.grace_minutes)
    scheduled = ends_at - starts_at
    decisions = []
    for email, items in by_person.items():
        present = presence_within([item.interval for item in items], window_start, ends_at)
        percent = min(100.0, 100 * present / scheduled) if scheduled > timedelta(0) else 0.0
        shown = int(percent)  # rounded down, so the explanation never shows the threshold for a miss
        attended = percent >= policy.min_percent
        rules = ", ".join(sorted({item.rule for item in items}))
        decisions.append(AttendanceDecision(
            email=email, attended=attended,
            explanation=(f"{len(items)} segment(s) matched by {rules}; present {int(present.total_seconds() // 60)} "
                         f"min = {shown}% of {starts_at:%H:%M}-{ends_at:%H:%M} UTC (from {policy.grace_minutes} min "
                         f"before the start); threshold "
                         f"{policy.min_percent}%: {'attended' if attended else 'not attended'}"),
        ))
    return sorted(decisions, key=lambda decision: decision.email)
