"""Interval merging, identity matching and the attendance policy: pure functions, property-tested."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from viltbridge.core.attendance import (
    AttendancePolicy,
    Interval,
    LaunchIdentity,
    MatchedSegment,
    decide_from_segments,
    match_segments,
    merge_intervals,
    presence_within,
)
from viltbridge.core.provider import ParticipantSegment

pytestmark = pytest.mark.pure

T0 = datetime(2026, 3, 8, 6, 0, tzinfo=UTC)  # the US DST change is at 07:00 UTC that day: UTC arithmetic ignores it
minutes = st.integers(0, 240)
intervals = st.lists(st.tuples(minutes, minutes).map(
    lambda pair: Interval(T0 + timedelta(minutes=min(pair)), T0 + timedelta(minutes=max(pair)))), max_size=20)


def covered_minutes(items: list[Interval]) -> set[int]:
    return {m for item in items for m in range(int((item.start - T0).total_seconds() // 60),
                                              int((item.end - T0).total_seconds() // 60))}


@settings(max_examples=300)
@given(items=intervals, data=st.data())
def test_merging_is_the_union_sorted_disjoint_and_order_independent(items: list[Interval], data) -> None:
    merged = merge_intervals(items)
    assert covered_minutes(merged) == covered_minutes(items)
    assert all(a.end < b.start for a, b in pairwise(merged))
    assert merge_intervals(data.draw(st.permutations(items))) == merged
    assert merge_intervals(merged) == merged
    assert merge_intervals(items + items) == merged  # duplicated deliveries change nothing


@given(items=intervals, start=minutes, length=minutes)
def test_presence_counts_each_minute_once_and_only_inside_the_window(items: list[Interval], start: int,
                                                                     length: int) -> None:
    window = set(range(start, start + length))
    present = presence_within(items, T0 + timedelta(minutes=start), T0 + timedelta(minutes=start + length))
    assert present == timedelta(minutes=len(covered_minutes(items) & window))


def segment(name: str, start: int, end: int | None, **evidence: str) -> ParticipantSegment:
    email = evidence.pop("email", None)
    return ParticipantSegment(participant_key=name, joined_at=T0 + timedelta(minutes=start),
                              left_at=None if end is None else T0 + timedelta(minutes=end), email=email,
                              display_name=name, evidence=evidence)


PEOPLE = {
    "jane@example.com": LaunchIdentity("Jane@Example.com", frozenset({"reg-jane"}), frozenset()),
    "bob@example.com": LaunchIdentity("bob@example.com", frozenset(), frozenset({"vb-abc123"})),
    "amy@example.com": LaunchIdentity("amy@example.com", frozenset(), frozenset()),
}


def test_identity_first_then_tag_then_email_and_nothing_guessed() -> None:
    segments = [
        segment("Laptop", 0, 30, registrant_id="reg-jane", email="someone.else@example.com"),
        segment("bob vb-abc123", 0, 30),
        segment("Amy", 0, 30, email="AMY@example.com"),
        segment("Jane", 0, 30),  # the same name as a learner, but no evidence: not guessed
    ]
    matched, unmatched = match_segments(segments, PEOPLE, T0 + timedelta(hours=1))
    assert [(m.email, m.rule) for m in matched] == [("Jane@Example.com", "registrant_id"),
                                                      ("bob@example.com", "display_name_tag"),
                                                      ("amy@example.com", "email")]
    assert [s.display_name for s in unmatched] == ["Jane"]


def test_an_open_segment_counts_until_the_scheduled_end() -> None:
    matched, _ = match_segments([segment("Laptop", 10, None, registrant_id="reg-jane")], PEOPLE,
                                T0 + timedelta(minutes=60))
    assert matched[0].interval.end == T0 + timedelta(minutes=60)


@pytest.mark.parametrize("present, attended", [(44, False), (45, True), (60, True)])
def test_the_threshold_is_a_share_of_the_scheduled_part(present: int, attended: bool) -> None:
    start, end = T0 + timedelta(minutes=10), T0 + timedelta(minutes=70)
    reconnects = [MatchedSegment("a@example.com", Interval(start, start + timedelta(minutes=present // 2)), "email"),
                  MatchedSegment("a@example.com", Interval(start + timedelta(minutes=present // 2),
                                                           start + timedelta(minutes=present)), "registrant_id")]
    [decision] = decide_from_segments(reconnects, starts_at=start, ends_at=end, policy=AttendancePolicy(75))
    assert decision.attended is attended
    assert f"threshold 75%: {'attended' if attended else 'not attended'}" in decision.explanation
    assert "2 segment(s) matched by email, registrant_id" in decision.explanation


def test_time_after_the_end_does_not_count_and_grace_before_the_start_does() -> None:
    start, end = T0 + timedelta(minutes=20), T0 + timedelta(minutes=80)
    early_and_late = [MatchedSegment("a@example.com", Interval(T0 + timedelta(minutes=10),
                                                               T0 + timedelta(minutes=30)), "email"),
                      MatchedSegment("a@example.com", Interval(T0 + timedelta(minutes=70),
                                                               T0 + timedelta(minutes=200)), "email")]
    [decision] = decide_from_segments(early_and_late, starts_at=start, ends_at=end,
                                      policy=AttendancePolicy(min_percent=50, grace_minutes=10))
    # 10:00-10:30 counts from 10:10 (grace), 11:10-11:20 counts until the end: 20 + 10 = 30 of 60 minutes
    assert "present 30 min = 50%" in decision.explanation and decision.attended
