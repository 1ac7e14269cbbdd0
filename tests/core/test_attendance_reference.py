"""The fast attendance pipeline against the naive reference (bench/attendance_naive.py) on generated data: the same
decisions, the same explanations word for word, in the same order, for every policy, whatever the segments' order,
duplicates, spellings, empty or reversed segments, waiting-room time, rules and windows."""

from __future__ import annotations

import copy
import pickle
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from bench.attendance_naive import naive_decisions, naive_presence, naive_session
from hypothesis import given, settings
from hypothesis import strategies as st

from viltbridge.core.attendance import (
    RULES,
    VERIFIED_EMAIL,
    AttendanceDecision,
    AttendancePolicy,
    Interval,
    MatchedSegment,
    PartWindow,
    decide_from_segments,
    decide_session,
    presence_within,
)

pytestmark = pytest.mark.pure

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
EXAMPLES = settings(max_examples=300, deadline=None)


def at(tick: int) -> datetime:
    """Ticks of 20 s with an odd microsecond part now and then, so sums are not whole minutes by accident."""
    return T0 + timedelta(seconds=20 * tick, microseconds=7 * (tick % 3))


ticks = st.integers(0, 40)
intervals = st.builds(lambda start, end: Interval(at(start), at(end)), ticks, ticks)  # end before start happens too
segments = st.builds(
    MatchedSegment,
    st.sampled_from(["a@example.com", "A@Example.com", " a@example.com", "b@example.com", "c@example.com"]),
    intervals,
    st.sampled_from([*RULES, VERIFIED_EMAIL]),
    st.booleans(),
    st.sampled_from(["", "Zoom", "the provider"]),  # a verified email names who verified it; "" reads as the provider
)


@st.composite
def deliveries(draw: st.DrawFn) -> list[MatchedSegment]:
    """Segments as they arrive: in any order, some delivered twice (the same object or an equal copy)."""
    items = draw(st.lists(segments, max_size=16))
    if items:
        again = draw(st.lists(st.sampled_from(items), max_size=6))
        items += [MatchedSegment(item.email, Interval(item.interval.start, item.interval.end), item.rule,
                                 item.waiting_room, item.verified_by) if draw(st.booleans()) else item
                  for item in again]
    return draw(st.permutations(items))


policies = st.builds(
    AttendancePolicy,
    min_percent=st.integers(0, 100),
    grace_minutes=st.integers(0, 3),
    min_minutes=st.none() | st.integers(0, 12),
    cap_at_end=st.booleans(),
    count_waiting_room=st.booleans(),
    parts=st.sampled_from(["all", "any", "per_part"]),
)


@st.composite
def windows(draw: st.DrawFn) -> tuple[datetime, datetime]:
    """A scheduled part, now and then empty or reversed, now and then in a zone other than UTC."""
    starts_at, ends_at = at(draw(ticks)), at(draw(ticks))
    if draw(st.booleans()):
        starts_at, ends_at = starts_at.astimezone(BERLIN), ends_at.astimezone(BERLIN)
    return starts_at, ends_at


@EXAMPLES
@given(matched=deliveries(), policy=policies, window=windows())
def test_decisions_are_the_naive_references(matched: list[MatchedSegment], policy: AttendancePolicy,
                                            window: tuple[datetime, datetime]) -> None:
    starts_at, ends_at = window
    expected = naive_decisions(matched, starts_at=starts_at, ends_at=ends_at, policy=policy)
    assert decide_from_segments(matched, starts_at=starts_at, ends_at=ends_at, policy=policy) == expected


@EXAMPLES
@given(first=deliveries(), second=deliveries(), policy=policies, one=windows(), two=windows())
def test_session_decisions_are_the_naive_references(first: list[MatchedSegment], second: list[MatchedSegment],
                                                    policy: AttendancePolicy, one: tuple[datetime, datetime],
                                                    two: tuple[datetime, datetime]) -> None:
    parts = [PartWindow("one", *one), PartWindow("two", *two)]
    matched = {"one": first, "two": second}
    assert decide_session(parts, matched, policy) == naive_session(parts, matched, policy)


@EXAMPLES
@given(items=st.lists(intervals, max_size=16), window=windows())
def test_presence_is_the_naive_references(items: list[Interval], window: tuple[datetime, datetime]) -> None:
    start, end = window
    assert presence_within(items, start, end) == naive_presence(items, start.astimezone(UTC), end.astimezone(UTC))


@EXAMPLES
@given(scheduled=st.integers(1, 10 * 3600 * 10**6), percent=st.integers(0, 100), off=st.integers(-2, 2))
def test_the_threshold_is_the_naive_references_to_the_microsecond(scheduled: int, percent: int, off: int) -> None:
    # Around the least presence that reaches `percent` of a part of any length in microseconds, not only of lengths
    # whose share comes out whole.
    starts_at, ends_at = T0, T0 + timedelta(microseconds=scheduled)
    present = timedelta(microseconds=min(scheduled, max(0, -(-percent * scheduled // 100) + off)))
    matched = [MatchedSegment("a@example.com", Interval(starts_at, starts_at + present), "email")]
    policy = AttendancePolicy(min_percent=percent, grace_minutes=0)
    expected = naive_decisions(matched, starts_at=starts_at, ends_at=ends_at, policy=policy)
    assert decide_from_segments(matched, starts_at=starts_at, ends_at=ends_at, policy=policy) == expected


# --- decisions stay values ------------------------------------------------------------------------------------------


def test_a_decision_whose_explanation_is_written_when_read_is_the_same_value() -> None:
    matched = [MatchedSegment("a@example.com", Interval(at(3), at(20)), "email"),
               MatchedSegment("b@example.com", Interval(at(0), at(1)), "personal_id")]
    policy = AttendancePolicy(grace_minutes=0)
    [first, second] = decide_from_segments(matched, starts_at=at(0), ends_at=at(20), policy=policy)
    [expected, _] = naive_decisions(matched, starts_at=at(0), ends_at=at(20), policy=policy)
    # Compared, hashed and printed before anything read its explanation, then after.
    assert first == expected and hash(first) == hash(expected) and repr(first) == repr(expected)
    assert repr(second).startswith("AttendanceDecision(email='b@example.com', attended=False, explanation='1 segment")
    assert (first.email, first.attended, first.explanation) == (expected.email, expected.attended, expected.explanation)
    assert pickle.loads(pickle.dumps(second)) == second and copy.deepcopy(second) == second
    assert {first, expected} == {first}
    match first:
        case AttendanceDecision(email, attended, explanation):
            assert (email, attended, explanation) == ("a@example.com", True, expected.explanation)
    with pytest.raises(AttributeError):
        first.attended = False  # type: ignore[misc]
    with pytest.raises(AttributeError):
        first.note = "x"  # type: ignore[attr-defined]
    assert first != (first.email, first.attended, first.explanation)
