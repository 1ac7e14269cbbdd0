"""The naive reference for the attendance decisions: what `bench.attendance` measures the fast pipeline against, and
what tests/core/test_attendance_reference.py holds it to on generated data.

The pipeline as it was written before issue 16 (group by spelling, then by person, judge each person with
intermediate objects, format every explanation), with presence computed by pairwise subtraction instead of a sweep:
the same text, decisions and order are the contract, reached the obvious way. Slow on purpose; never used by the
application.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from viltbridge.core.attendance import (
    VERIFIED_EMAIL,
    AttendanceDecision,
    AttendancePolicy,
    Interval,
    MatchedSegment,
    PartWindow,
    SessionDecisions,
    as_utc,
)
from viltbridge.core.emails import normalize_email

_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MINUTE = timedelta(minutes=1)
_PARTS_WORDS = {"all": "every part", "any": "at least one part",
                "per_part": "each part on its own; the session needs every part"}


def naive_presence(intervals: list[Interval], start: datetime, end: datetime) -> timedelta:
    """Each segment counts for what no earlier segment already covered: subtract every earlier one from it."""
    clipped = [(max(i.start, start), min(i.end, end)) for i in intervals]
    clipped = [(begin, finish) for begin, finish in clipped if finish > begin]
    total = timedelta(0)
    for index, (begin, finish) in enumerate(clipped):
        pieces = [(begin, finish)]
        for other_begin, other_end in clipped[:index]:
            remaining = []
            for piece_begin, piece_end in pieces:
                if other_end <= piece_begin or other_begin >= piece_end:
                    remaining.append((piece_begin, piece_end))
                    continue
                if piece_begin < other_begin:
                    remaining.append((piece_begin, other_begin))
                if other_end < piece_end:
                    remaining.append((other_end, piece_end))
            pieces = remaining
        for piece_begin, piece_end in pieces:
            total += piece_end - piece_begin
    return total


@dataclass(frozen=True)
class _Judgement:
    email: str
    segments: int
    rules: str
    waiting_room: int
    present: timedelta
    percent: int
    by_percent: bool
    by_minutes: bool

    @property
    def attended(self) -> bool:
        return self.by_percent or self.by_minutes


def _span(start: datetime, end: datetime, *, dated: bool = False) -> str:
    if start.date() != end.date():
        return f"{start:%Y-%m-%d %H:%M}-{end:%Y-%m-%d %H:%M} UTC"
    return f"{start:%Y-%m-%d %H:%M}-{end:%H:%M} UTC" if dated else f"{start:%H:%M}-{end:%H:%M} UTC"


def _by_spelling(matched: Iterable[MatchedSegment]) -> dict[str, list[MatchedSegment]]:
    groups: dict[str, list[MatchedSegment]] = {}
    for item in matched:
        groups.setdefault(item.email, []).append(item)
    return groups


def _spellings(emails: Iterable[str]) -> dict[str, str]:
    spelling: dict[str, str] = {}
    for email in emails:
        key = normalize_email(email)
        if key not in spelling or email < spelling[key]:
            spelling[key] = email
    return spelling


def _rule_words(item: MatchedSegment) -> str:
    if item.rule == VERIFIED_EMAIL:
        return f"{VERIFIED_EMAIL} (email verified by {item.verified_by or 'the provider'}, no launch)"
    return item.rule


def _judge(by_spelling: Mapping[str, list[MatchedSegment]], starts_at: datetime, ends_at: datetime,
           policy: AttendancePolicy, spelling: Mapping[str, str]) -> dict[str, _Judgement]:
    by_person: dict[str, list[MatchedSegment]] = {}
    for email, group in by_spelling.items():
        by_person.setdefault(normalize_email(email), []).extend(group)
    starts_at, ends_at = as_utc(starts_at), as_utc(ends_at)
    window_start = starts_at - timedelta(minutes=policy.grace_minutes)
    window_end = ends_at if policy.cap_at_end else _FAR_FUTURE
    scheduled = (ends_at - starts_at) // _MICROSECOND
    judged: dict[str, _Judgement] = {}
    for key, items in by_person.items():
        counted = [item.interval for item in items if policy.count_waiting_room or not item.waiting_room]
        present = naive_presence(counted, window_start, window_end)
        present_us = present // _MICROSECOND
        if scheduled > 0:
            percent = min(100, present_us * 100 // scheduled)
            by_percent = present_us * 100 >= policy.min_percent * scheduled
        else:
            percent, by_percent = 0, policy.min_percent == 0
        distinct = {(item.interval.start, item.interval.end, _rule_words(item), item.waiting_room) for item in items}
        judged[key] = _Judgement(
            email=spelling[key], segments=len(distinct), rules=", ".join(sorted({item[2] for item in distinct})),
            waiting_room=0 if policy.count_waiting_room else sum(1 for item in distinct if item[3]),
            present=present, percent=percent, by_percent=by_percent,
            by_minutes=policy.min_minutes is not None and present >= timedelta(minutes=policy.min_minutes),
        )
    return judged


def _explain(judgement: _Judgement, starts_at: datetime, ends_at: datetime, policy: AttendancePolicy) -> str:
    window = (f"{_span(as_utc(starts_at), as_utc(ends_at))} (from {policy.grace_minutes} min before the start"
              f"{'' if policy.cap_at_end else '; time after the end counts, at most 100%'})")
    threshold = f"{policy.min_percent}%" + ("" if policy.min_minutes is None else f" or {policy.min_minutes} min")
    excluded = f" ({judgement.waiting_room} in the waiting room, not counted)" if judgement.waiting_room else ""
    outcome = ("attended" if judgement.by_percent else f"attended by the {policy.min_minutes}-minute rule"
               if judgement.by_minutes else "not attended")
    return (f"{judgement.segments} segment(s) matched by {judgement.rules}{excluded}; present "
            f"{judgement.present // _MINUTE} min = {judgement.percent}% of {window}; threshold {threshold}: {outcome}")


def naive_decisions(matched: list[MatchedSegment], *, starts_at: datetime, ends_at: datetime,
                    policy: AttendancePolicy) -> list[AttendanceDecision]:
    """What `decide_from_segments` must return."""
    by_spelling = _by_spelling(matched)
    judged = _judge(by_spelling, starts_at, ends_at, policy, _spellings(by_spelling))
    decisions = [AttendanceDecision(j.email, j.attended, _explain(j, starts_at, ends_at, policy))
                 for j in judged.values()]
    return sorted(decisions, key=lambda decision: decision.email)


def naive_session(parts: Sequence[PartWindow], matched_by_part: Mapping[str, Sequence[MatchedSegment]],
                  policy: AttendancePolicy) -> SessionDecisions:
    """What `decide_session` must return (for valid parts; the refusals are tested on their own)."""
    grouped = {part.name: _by_spelling(matched_by_part.get(part.name, ())) for part in parts}
    spelling = _spellings(email for groups in grouped.values() for email in groups)
    judged = {part.name: _judge(grouped[part.name], part.starts_at, part.ends_at, policy, spelling) for part in parts}
    by_part: dict[str, list[AttendanceDecision]] = {part.name: [] for part in parts}
    session: list[AttendanceDecision] = []
    for key in sorted(spelling, key=spelling.__getitem__):
        outcomes: list[bool] = []
        summary: list[str] = []
        for part in parts:
            judgement = judged[part.name].get(key)
            span = _span(as_utc(part.starts_at), as_utc(part.ends_at), dated=True)
            if judgement is None:
                attended, explanation = False, f"no segment matched in this part ({span}): not attended"
                summary.append(f"{part.name} ({span}): not attended, no segment")
            else:
                attended = judgement.attended
                explanation = _explain(judgement, part.starts_at, part.ends_at, policy)
                summary.append(f"{part.name} ({span}): {'attended' if attended else 'not attended'}, "
                               f"{judgement.percent}%")
            outcomes.append(attended)
            by_part[part.name].append(AttendanceDecision(spelling[key], attended, explanation))
        attended_session = any(outcomes) if policy.parts == "any" else all(outcomes)
        session.append(AttendanceDecision(spelling[key], attended_session, (
            f"{sum(outcomes)} of {len(parts)} part(s) attended; rule: {_PARTS_WORDS[policy.parts]}: "
            f"{'attended' if attended_session else 'not attended'} ({'; '.join(summary)})")))
    return SessionDecisions(session=session, by_part=by_part)
