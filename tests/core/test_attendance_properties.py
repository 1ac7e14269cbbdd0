"""Properties of the attendance arithmetic, checked against brute force on a grid of whole seconds, plus DST examples.

Intervals live on small integer-second ranges so a set of covered seconds is the obvious truth to compare with.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from viltbridge.core.attendance import (
    RULES,
    AttendancePolicy,
    Interval,
    LaunchIdentity,
    MatchedSegment,
    PartWindow,
    decide_from_segments,
    decide_session,
    match_segments,
    merge_intervals,
    presence_within,
)
from viltbridge.core.provider import ParticipantSegment

pytestmark = pytest.mark.pure

CHEAP = settings(max_examples=150, deadline=None)
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")

seconds = st.integers(0, 90)
raw_pairs = st.lists(st.tuples(seconds, seconds), max_size=12)  # start > end happens too: such an interval is empty


def at(second: int) -> datetime:
    return T0 + timedelta(seconds=second)


def as_intervals(pairs: list[tuple[int, int]]) -> list[Interval]:
    return [Interval(at(start), at(end)) for start, end in pairs]


def covered(pairs: list[tuple[int, int]]) -> set[int]:
    return {second for start, end in pairs for second in range(start, end)}


def covered_by(intervals: list[Interval]) -> set[int]:
    return covered([(int((i.start - T0).total_seconds()), int((i.end - T0).total_seconds())) for i in intervals])


# --- merge_intervals ----------------------------------------------------------------------------------------------


@CHEAP
@given(pairs=raw_pairs)
def test_merged_intervals_are_sorted_disjoint_not_touching_and_cover_exactly_the_union(
        pairs: list[tuple[int, int]]) -> None:
    merged = merge_intervals(as_intervals(pairs))
    assert all(item.start < item.end for item in merged)
    assert all(earlier.end < later.start for earlier, later in pairwise(merged))  # touching ones would be one
    assert covered_by(merged) == covered(pairs)


@CHEAP
@given(pairs=raw_pairs, data=st.data())
def test_merging_ignores_order_and_is_idempotent(pairs: list[tuple[int, int]], data: st.DataObject) -> None:
    intervals = as_intervals(pairs)
    merged = merge_intervals(intervals)
    assert merge_intervals(data.draw(st.permutations(intervals))) == merged
    assert merge_intervals(merged) == merged
    assert merge_intervals(intervals + intervals) == merged
    assert merge_intervals(intervals + merged) == merged


# --- presence_within ----------------------------------------------------------------------------------------------


@CHEAP
@given(pairs=raw_pairs, window=st.tuples(seconds, seconds))
def test_presence_is_the_covered_seconds_inside_the_window_and_never_more_than_the_window(
        pairs: list[tuple[int, int]], window: tuple[int, int]) -> None:
    start, end = window
    present = presence_within(as_intervals(pairs), at(start), at(end))
    assert present == timedelta(seconds=len(covered(pairs) & set(range(start, end))))
    assert present <= max(timedelta(0), at(end) - at(start))


@CHEAP
@given(pairs=raw_pairs, extra=raw_pairs, window=st.tuples(seconds, seconds))
def test_presence_only_grows_when_segments_are_added(pairs: list[tuple[int, int]], extra: list[tuple[int, int]],
                                                     window: tuple[int, int]) -> None:
    start, end = at(window[0]), at(window[1])
    assert presence_within(as_intervals(pairs + extra), start, end) >= presence_within(as_intervals(pairs), start, end)


# --- decisions ----------------------------------------------------------------------------------------------------

policies = st.builds(
    AttendancePolicy,
    min_percent=st.integers(0, 100),
    grace_minutes=st.integers(0, 2),
    min_minutes=st.none() | st.integers(0, 2),
    cap_at_end=st.booleans(),
    count_waiting_room=st.booleans(),
)
matched_segments = st.lists(st.builds(
    lambda email, pair, rule, waiting: MatchedSegment(email, Interval(at(pair[0] * 2), at(pair[1] * 2)), rule,
                                                      waiting),
    st.sampled_from(["a@example.com", "A@Example.com", "b@example.com"]),  # two spellings of one person
    st.tuples(seconds, seconds), st.sampled_from(RULES), st.booleans(),
), max_size=12)
WINDOW = {"starts_at": at(60), "ends_at": at(150)}


@CHEAP
@given(items=matched_segments, policy=policies, data=st.data())
def test_decisions_depend_on_the_set_of_segments_only(items: list[MatchedSegment], policy: AttendancePolicy,
                                                      data: st.DataObject) -> None:
    decisions = decide_from_segments(items, **WINDOW, policy=policy)
    shuffled = data.draw(st.permutations(items))
    repeated = items + data.draw(st.lists(st.sampled_from(items), max_size=6)) if items else items
    assert decide_from_segments(shuffled, **WINDOW, policy=policy) == decisions
    assert decide_from_segments(repeated, **WINDOW, policy=policy) == decisions
    assert len({d.email.lower() for d in decisions}) == len(decisions)


@CHEAP
@given(first=matched_segments, second=matched_segments, rule=st.sampled_from(["all", "any", "per_part"]),
       data=st.data())
def test_session_decisions_ignore_order_and_follow_the_parts_rule(first: list[MatchedSegment],
                                                                   second: list[MatchedSegment], rule: str,
                                                                   data: st.DataObject) -> None:
    parts = [PartWindow("one", at(60), at(150)), PartWindow("two", at(60), at(150))]
    policy = AttendancePolicy.from_settings({"parts": rule})
    result = decide_session(parts, {"one": first, "two": second}, policy)
    again = decide_session(parts, {"one": data.draw(st.permutations(first)), "two": second + second}, policy)
    assert again == result
    for index, decision in enumerate(result.session):
        per_part = [result.by_part[name][index].attended for name in ("one", "two")]
        assert decision.attended is (any(per_part) if rule == "any" else all(per_part))


@CHEAP
@given(scheduled=st.integers(1, 6 * 3600), percent=st.integers(0, 100))
def test_exactly_the_threshold_is_attended_and_a_microsecond_less_is_not(scheduled: int, percent: int) -> None:
    start, end = T0, T0 + timedelta(seconds=scheduled)
    exactly = timedelta(microseconds=scheduled * percent * 10_000)  # percent% of the scheduled length, exactly
    policy = AttendancePolicy(min_percent=percent, grace_minutes=0)

    def decide(present: timedelta) -> tuple[bool, str]:
        [decision] = decide_from_segments([MatchedSegment("a@example.com", Interval(start, start + present), "email")],
                                          starts_at=start, ends_at=end, policy=policy)
        return decision.attended, decision.explanation

    attended, explanation = decide(exactly)
    assert attended and f"= {percent}% of" in explanation
    if percent > 0:
        missed, explanation = decide(exactly - timedelta(microseconds=1))
        assert not missed and f"= {percent - 1}% of" in explanation  # rounded down: never shows the threshold


@CHEAP
@given(minutes=st.integers(1, 239))
def test_exactly_the_minimum_minutes_is_attended(minutes: int) -> None:
    start, end = T0, T0 + timedelta(hours=4)
    policy = AttendancePolicy(min_percent=100, min_minutes=minutes, grace_minutes=0)
    for present, expected in ((timedelta(minutes=minutes), True), (timedelta(minutes=minutes, microseconds=-1), False)):
        [decision] = decide_from_segments([MatchedSegment("a@example.com", Interval(start, start + present), "email")],
                                          starts_at=start, ends_at=end, policy=policy)
        assert decision.attended is expected


# --- DST: presence is real elapsed time ---------------------------------------------------------------------------

PEOPLE = {"jane@example.com": LaunchIdentity("jane@example.com", frozenset({"reg-jane"}), frozenset())}


def berlin(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=BERLIN, fold=fold)  # type: ignore[misc]


def decide_in_berlin(joined: datetime, left: datetime | None, starts: datetime, ends: datetime) -> str:
    segment = ParticipantSegment("p1", joined, left, evidence={"personal_id": "reg-jane"})
    matched, _ = match_segments([segment], PEOPLE, ends)
    [decision] = decide_from_segments(matched, starts_at=starts, ends_at=ends, policy=AttendancePolicy())
    return decision.explanation


def test_a_class_across_the_autumn_change_lasts_four_real_hours() -> None:
    # 00:30-03:30 local on the last Sunday of October: the clock shows 3 hours, 02:00-03:00 happens twice.
    starts, ends = berlin(2026, 10, 25, 0, 30), berlin(2026, 10, 25, 3, 30)
    assert presence_within([Interval(starts, ends)], starts, ends) == timedelta(hours=4)
    assert decide_in_berlin(starts, ends, starts, ends).startswith(
        "1 segment(s) matched by personal_id; present 240 min = 100% of 2026-10-24 22:30-2026-10-25 02:30 UTC")
    # Until the first 02:30 (summer time) is 2 hours; until the second 02:30 (winter time) is 3.
    assert "present 120 min = 50%" in decide_in_berlin(starts, berlin(2026, 10, 25, 2, 30), starts, ends)
    assert "present 180 min = 75%" in decide_in_berlin(starts, berlin(2026, 10, 25, 2, 30, fold=1), starts, ends)


def test_a_class_across_the_spring_change_lasts_one_real_hour() -> None:
    starts, ends = berlin(2026, 3, 29, 1, 30), berlin(2026, 3, 29, 3, 30)  # 02:00-03:00 does not exist that night
    assert "present 60 min = 100% of 00:30-01:30 UTC" in decide_in_berlin(starts, ends, starts, ends)
    assert "present 30 min = 50%" in decide_in_berlin(berlin(2026, 3, 29, 3, 0), None, starts, ends)  # open: to the end


def test_zoned_intervals_merge_in_real_time_order() -> None:
    # 02:15 in winter time is after 02:45 in summer time: merged on wall clocks they would overlap.
    summer = Interval(berlin(2026, 10, 25, 2, 0), berlin(2026, 10, 25, 2, 45))
    winter = Interval(berlin(2026, 10, 25, 2, 15, fold=1), berlin(2026, 10, 25, 2, 30, fold=1))
    assert merge_intervals([winter, summer]) == [summer, winter]
    assert [item.start.tzinfo for item in merge_intervals([winter, summer])] == [UTC, UTC]
