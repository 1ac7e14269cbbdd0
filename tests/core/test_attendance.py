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
    LedgerSegment,
    MatchedSegment,
    PartWindow,
    choose_evidence,
    decide_from_segments,
    decide_session,
    identify_segments,
    match_segments,
    merge_intervals,
    merge_into_ledger,
    presence_within,
)
from viltbridge.core.errors import InvalidInput
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
        segment("Laptop", 0, 30, personal_id="reg-jane", email="someone.else@example.com"),
        segment("bob vb-abc123", 0, 30),
        segment("Amy", 0, 30, email="AMY@example.com"),
        segment("Jane", 0, 30),  # the same name as a learner, but no evidence: not guessed
    ]
    matched, unmatched = match_segments(segments, PEOPLE, T0 + timedelta(hours=1))
    assert [(m.email, m.rule) for m in matched] == [("Jane@Example.com", "personal_id"),
                                                      ("bob@example.com", "display_name_tag"),
                                                      ("amy@example.com", "email")]
    assert [s.display_name for s in unmatched] == ["Jane"]


def test_an_open_segment_counts_until_the_scheduled_end() -> None:
    matched, _ = match_segments([segment("Laptop", 10, None, personal_id="reg-jane")], PEOPLE,
                                T0 + timedelta(minutes=60))
    assert matched[0].interval.end == T0 + timedelta(minutes=60)


@pytest.mark.parametrize("present, attended", [(44, False), (45, True), (60, True)])
def test_the_threshold_is_a_share_of_the_scheduled_part(present: int, attended: bool) -> None:
    start, end = T0 + timedelta(minutes=10), T0 + timedelta(minutes=70)
    reconnects = [MatchedSegment("a@example.com", Interval(start, start + timedelta(minutes=present // 2)), "email"),
                  MatchedSegment("a@example.com", Interval(start + timedelta(minutes=present // 2),
                                                           start + timedelta(minutes=present)), "personal_id")]
    [decision] = decide_from_segments(reconnects, starts_at=start, ends_at=end, policy=AttendancePolicy(75))
    assert decision.attended is attended
    assert f"threshold 75%: {'attended' if attended else 'not attended'}" in decision.explanation
    assert "2 segment(s) matched by email, personal_id" in decision.explanation


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


# --- identity: every rule, strongest first, and what goes to review -------------------------------------------

NAMED = {
    "jane@example.com": LaunchIdentity("Jane@Example.com", frozenset({"reg-jane"}), frozenset(),
                                       frozenset({"Jane Doe"})),
    "bob@example.com": LaunchIdentity("bob@example.com", frozenset(), frozenset({"vb-abc123"}), frozenset({"Bob Ray"})),
    "amy@example.com": LaunchIdentity("amy@example.com", frozenset(), frozenset(), frozenset({"Sam Lee"})),
    "ann@example.com": LaunchIdentity("ann@example.com", frozenset(), frozenset(), frozenset({"Sam Lee"})),
}
END = T0 + timedelta(hours=1)


def rules_of(segments: list[ParticipantSegment], **options) -> list[tuple[str, str]]:
    found = identify_segments(segments, NAMED, END, **options)
    return [(m.email, m.rule) for m in found.matched]


def test_each_rule_names_itself() -> None:
    assert rules_of([segment("Laptop", 0, 30, personal_id="reg-jane")]) == [("Jane@Example.com", "personal_id")]
    assert rules_of([segment("B vb-abc123", 0, 30)]) == [("bob@example.com", "display_name_tag")]
    assert rules_of([segment("x", 0, 30, email=" Bob@EXAMPLE.com ")]) == [("bob@example.com", "email")]
    assert rules_of([segment("x", 0, 30, email="Lee@Example.com")], roster=["Lee@Example.com"]) == [
        ("Lee@Example.com", "email")]
    assert rules_of([segment("x", 0, 30, email=" JANE.D@Gmail.com")],
                    aliases={"jane.d@gmail.com ": "jane@example.com"}) == [("Jane@Example.com", "alias")]
    assert rules_of([segment("  jane   DOE ", 0, 30)]) == [("Jane@Example.com", "unique_name")]


def test_an_alias_may_name_someone_who_never_launched_and_is_reported_as_the_table_spells_them() -> None:
    assert rules_of([segment("x", 0, 30, email="kim@home.example")], aliases={"KIM@home.example": "Kim@Corp.example"}) \
        == [("Kim@Corp.example", "alias")]


def test_the_stronger_rule_wins() -> None:
    # A personal link id beats the signed-in email of someone who is not a learner (people join from personal accounts).
    assert rules_of([segment("Jane Doe vb-abc123", 0, 30, personal_id="reg-jane", email="me@home.example")]) == [
        ("Jane@Example.com", "personal_id")]
    # An exact email beats an alias for the same address, and a unique name only counts when nothing else does.
    assert rules_of([segment("Bob Ray", 0, 30, email="amy@example.com")],
                    aliases={"amy@example.com": "bob@example.com"}) == [("amy@example.com", "email")]


@pytest.mark.parametrize("clue, reason", [
    (segment("Sam Lee", 0, 30), "display name 'Sam Lee' is the name of 2 launched learners (amy@example.com, "
                                "ann@example.com)"),
    (segment("bob vb-abc123", 0, 30, email="amy@example.com"), "identifies bob@example.com, but the participant "
                                                                "signed in as amy@example.com"),
    (segment("Laptop", 0, 30, personal_id="reg-jane", email="bob@example.com"), "personal link id reg-jane identifies"),
    (segment("vb-abc123", 0, 30, email="jd@home.example"), "which is Jane@Example.com's (by alias)"),
])
def test_ambiguous_segments_go_to_review_with_a_reason_and_are_never_credited(clue: ParticipantSegment,
                                                                              reason: str) -> None:
    found = identify_segments([clue], NAMED, END, aliases={"jd@home.example": "jane@example.com"})
    assert found.matched == [] and found.unmatched == []
    [item] = found.ambiguous
    assert item.segment is clue and reason in item.reason


def test_two_learners_tags_in_one_name_are_ambiguous() -> None:
    people = {**NAMED, "amy@example.com": LaunchIdentity("amy@example.com", frozenset(), frozenset({"vb-amy"}))}
    [item] = identify_segments([segment("vb-abc123 vb-amy", 0, 30)], people, END).ambiguous
    assert "belongs to 2 learners (amy@example.com, bob@example.com)" in item.reason


def test_match_segments_keeps_its_pair_and_sets_aside_ambiguous_ones_in_input_order() -> None:
    segments = [segment("Sam Lee", 0, 30), segment("nobody", 0, 30), segment("Bob Ray", 0, 30)]
    matched, set_aside = match_segments(segments, NAMED, END)
    assert [m.rule for m in matched] == ["unique_name"]
    assert set_aside == segments[:2]


def test_waiting_room_segments_are_marked_and_count_only_when_the_policy_says_so() -> None:
    segments = [segment("Laptop", 0, 30, personal_id="reg-jane", status="in_waiting_room"),
                segment("Laptop", 30, 60, personal_id="reg-jane", status="in_meeting")]
    matched, _ = match_segments(segments, NAMED, END)
    assert [m.waiting_room for m in matched] == [True, False]
    window = {"starts_at": T0, "ends_at": END}
    [without] = decide_from_segments(matched, **window, policy=AttendancePolicy())
    [with_lobby] = decide_from_segments(matched, **window, policy=AttendancePolicy(count_waiting_room=True))
    assert not without.attended and "(1 in the waiting room, not counted); present 30 min = 50%" in without.explanation
    assert with_lobby.attended and "present 60 min = 100%" in with_lobby.explanation


def test_an_email_the_provider_verified_is_credited_without_a_launch_and_a_typed_one_is_not() -> None:
    signed_in = segment("Pat", 0, 60, email="Pat@Example.com", email_verified_by="Zoom")
    typed = segment("Guest", 0, 60, email="guest@example.com")  # a guest's form field: only their word
    found = identify_segments([signed_in, typed], NAMED, END)
    assert [(m.email, m.rule, m.verified_by) for m in found.matched] == [("Pat@Example.com", "verified_email",
                                                                          "Zoom")]
    assert found.unmatched == [typed]
    [decision] = decide_from_segments(found.matched, starts_at=T0, ends_at=END, policy=AttendancePolicy())
    assert decision.attended
    assert "matched by verified_email (email verified by Zoom, no launch)" in decision.explanation


def test_a_verified_email_never_credits_an_instructor_and_never_beats_launch_evidence() -> None:
    host = segment("Tess", 0, 60, email="tess@example.com", email_verified_by="Zoom")
    assert identify_segments([host], NAMED, END, hosts=["Tess@example.com"]).unmatched == [host]
    # Jane's personal link, signed in to an account under another address: the link says who it is, as before.
    linked = segment("Laptop", 0, 60, personal_id="reg-jane", email="jd@home.example", email_verified_by="Zoom")
    assert rules_of([linked]) == [("Jane@Example.com", "personal_id")]
    # A verified email says more than a name that happens to be a launched learner's.
    named = segment("Jane Doe", 0, 60, email="other.jane@example.com", email_verified_by="Zoom")
    assert rules_of([named]) == [("other.jane@example.com", "verified_email")]


# --- decisions --------------------------------------------------------------------------------------------------


def test_the_explanation_spells_out_the_calculation() -> None:
    start = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    items = [MatchedSegment("jane@example.com", Interval(start + timedelta(minutes=a), start + timedelta(minutes=b)),
                            "personal_id") for a, b in [(-5, 30), (32, 60), (61, 80)]]
    [decision] = decide_from_segments(items, starts_at=start, ends_at=start + timedelta(minutes=90),
                                      policy=AttendancePolicy())
    assert decision.explanation == ("3 segment(s) matched by personal_id; present 82 min = 91% of 10:00-11:30 UTC "
                                    "(from 10 min before the start); threshold 75%: attended")


def test_minutes_can_carry_a_learner_the_percentage_does_not() -> None:
    start, end = T0, T0 + timedelta(hours=4)
    items = [MatchedSegment("a@example.com", Interval(start, start + timedelta(minutes=90)), "email")]
    policy = AttendancePolicy(min_percent=75, min_minutes=90)
    [decision] = decide_from_segments(items, starts_at=start, ends_at=end, policy=policy)
    assert decision.attended
    assert decision.explanation.endswith("present 90 min = 37% of 06:00-10:00 UTC (from 10 min before the start); "
                                         "threshold 75% or 90 min: attended by the 90-minute rule")
    [short] = decide_from_segments(items, starts_at=start, ends_at=end, policy=AttendancePolicy(min_minutes=91))
    assert not short.attended and short.explanation.endswith("threshold 75% or 91 min: not attended")


def test_time_after_the_end_counts_when_not_capped_but_never_above_100_percent() -> None:
    start, end = T0, T0 + timedelta(minutes=60)
    items = [MatchedSegment("a@example.com", Interval(start + timedelta(minutes=30), end + timedelta(minutes=60)),
                            "email")]
    [capped] = decide_from_segments(items, starts_at=start, ends_at=end, policy=AttendancePolicy())
    [uncapped] = decide_from_segments(items, starts_at=start, ends_at=end, policy=AttendancePolicy(cap_at_end=False))
    assert "present 30 min = 50%" in capped.explanation and not capped.attended
    assert "present 90 min = 100%" in uncapped.explanation and uncapped.attended
    assert "time after the end counts, at most 100%" in uncapped.explanation


def test_spellings_of_one_email_are_one_person() -> None:
    items = [MatchedSegment("Jane@Example.com", Interval(T0, T0 + timedelta(minutes=20)), "email"),
             MatchedSegment("jane@example.com", Interval(T0 + timedelta(minutes=20), T0 + timedelta(minutes=60)),
                            "personal_id")]
    [decision] = decide_from_segments(items, starts_at=T0, ends_at=T0 + timedelta(minutes=60),
                                      policy=AttendancePolicy())
    assert decision.email == "Jane@Example.com" and decision.attended


DAY1, DAY2 = T0, T0 + timedelta(days=1)
PARTS = [PartWindow("day 1", DAY1, DAY1 + timedelta(hours=1)), PartWindow("day 2", DAY2, DAY2 + timedelta(hours=1))]
BY_PART = {
    "day 1": [MatchedSegment("a@example.com", Interval(DAY1, DAY1 + timedelta(hours=1)), "email"),
              MatchedSegment("b@example.com", Interval(DAY1, DAY1 + timedelta(hours=1)), "email")],
    "day 2": [MatchedSegment("a@example.com", Interval(DAY2, DAY2 + timedelta(minutes=50)), "email"),
              MatchedSegment("b@example.com", Interval(DAY2, DAY2 + timedelta(minutes=10)), "email")],
}


@pytest.mark.parametrize("rule, attended", [("all", ["a@example.com"]), ("any", ["a@example.com", "b@example.com"]),
                                            ("per_part", ["a@example.com"])])
def test_parts_combine_by_the_policy_rule(rule: str, attended: list[str]) -> None:
    result = decide_session(PARTS, BY_PART, AttendancePolicy.from_settings({"parts": rule}))
    assert [d.email for d in result.session if d.attended] == attended
    assert {name: [d.attended for d in decisions] for name, decisions in result.by_part.items()} == {
        "day 1": [True, True], "day 2": [True, False]}
    b = result.session[1].explanation
    assert "day 1 (2026-03-08 06:00-07:00 UTC): attended, 100%" in b
    assert "day 2 (2026-03-09 06:00-07:00 UTC): not attended, 16%" in b


def test_a_learner_missing_from_a_part_did_not_attend_it() -> None:
    result = decide_session(PARTS, {"day 1": BY_PART["day 1"][:1]}, AttendancePolicy())
    [missing] = result.by_part["day 2"]
    assert not missing.attended and missing.explanation.startswith("no segment matched in this part")
    assert result.session[0].explanation.startswith("1 of 2 part(s) attended; rule: every part: not attended")


def test_segments_for_an_unscheduled_part_are_refused() -> None:
    with pytest.raises(ValueError, match="not scheduled"):
        decide_session(PARTS, {"day 3": []}, AttendancePolicy())


# --- policy settings --------------------------------------------------------------------------------------------


def test_settings_override_the_defaults_and_a_session_overrides_its_connection() -> None:
    connection = AttendancePolicy.from_settings({"min_percent": 80, "min_minutes": 45, "cap_at_end": False})
    session = connection.with_overrides({"min_minutes": None, "parts": "any"})
    assert connection == AttendancePolicy(min_percent=80, min_minutes=45, cap_at_end=False)
    assert session == AttendancePolicy(min_percent=80, cap_at_end=False, parts="any")
    assert AttendancePolicy.from_settings({}) == AttendancePolicy()


@pytest.mark.parametrize("settings, says", [
    ({"min_pct": 80}, "there is no setting 'min_pct' (did you mean min_percent? the settings are cap_at_end"),
    ({"min_percent": 101}, "min_percent is 101 (set it to a whole number from 0 to 100, e.g. 75)"),
    ({"min_percent": -1}, "min_percent is -1"),
    ({"min_percent": 75.5}, "min_percent is 75.5"),
    ({"min_percent": True}, "min_percent is True"),
    ({"grace_minutes": -5}, "grace_minutes is -5 (set it to a whole number of minutes from 0 to 1440"),
    ({"min_minutes": "60"}, "min_minutes is '60' (set it to a whole number of minutes from 0 to 1440, e.g. 60, or"),
    ({"cap_at_end": "yes"}, "cap_at_end is 'yes' (set it to true or false)"),
    ({"count_waiting_room": 1}, "count_waiting_room is 1"),
    ({"parts": "some"}, 'parts is \'some\' (set it to "all", "any" or "per_part")'),
])
def test_bad_settings_say_what_is_wrong_and_what_to_do(settings: dict[str, object], says: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        AttendancePolicy.from_settings(settings)
    assert caught.value.message.startswith("The attendance policy is not valid: ")
    assert says in caught.value.message


def test_every_problem_is_reported_at_once_and_the_constructor_checks_too() -> None:
    with pytest.raises(InvalidInput, match=r"min_percent is 120 .*; grace_minutes is -1 "):
        AttendancePolicy.from_settings({"min_percent": 120, "grace_minutes": -1})
    with pytest.raises(InvalidInput, match="min_minutes is -3"):
        AttendancePolicy(min_minutes=-3)
    with pytest.raises(InvalidInput, match="send an object of setting: value pairs"):
        AttendancePolicy.from_settings(["min_percent"])  # type: ignore[arg-type]


# --- the ledger ------------------------------------------------------------------------------------------------

def _seg(instance: str, who: str, start_min: int, end_min: int | None) -> ParticipantSegment:
    base = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    return ParticipantSegment(participant_key=who, joined_at=base + timedelta(minutes=start_min),
                              left_at=None if end_min is None else base + timedelta(minutes=end_min),
                              display_name=who, instance=instance)


def test_the_ledger_keeps_each_segment_once_and_learns_leaves_later() -> None:
    open_join = LedgerSegment("webhook", _seg("run-1", "jane", 0, None))
    ledger = merge_into_ledger([], [open_join])
    again = merge_into_ledger(ledger, [open_join])  # the same delivery twice
    assert again == ledger
    with_leave = merge_into_ledger(again, [LedgerSegment("webhook", _seg("run-1", "jane", 0, 40))])
    assert len(with_leave) == 1 and with_leave[0].segment.left_at is not None


def test_per_run_the_report_wins_and_runs_without_one_keep_their_live_events() -> None:
    ledger = [
        LedgerSegment("webhook", _seg("run-1", "jane", 0, None)),  # the leave webhook was lost
        LedgerSegment("report", _seg("run-1", "jane", 0, 20)),
        LedgerSegment("webhook", _seg("run-2", "jane", 22, 58)),  # the second run has no report yet
    ]
    chosen = choose_evidence(ledger)
    assert [(s.instance, s.left_at is not None) for s in chosen] == [("run-1", True), ("run-2", True)]
    assert choose_evidence(list(reversed(ledger))) == chosen  # order of arrival does not matter


def test_an_override_wins_and_keeps_what_the_evidence_said() -> None:
    from viltbridge.core.attendance import AttendanceDecision, AttendanceOverride, apply_overrides

    decisions = [AttendanceDecision("Jane@Example.com", False, "present 20 min = 33%; threshold 75%: not attended"),
                 AttendanceDecision("bob@example.com", True, "present 60 min")]
    overrides = [AttendanceOverride("jane@example.com", True, "joined by phone", "ada@example.com"),
                 AttendanceOverride("kim@example.com", False, "left at once", "ada@example.com")]
    result = apply_overrides(decisions, overrides)
    assert [(d.email, d.attended) for d in result] == [("Jane@Example.com", True), ("bob@example.com", True),
                                                       ("kim@example.com", False)]
    assert result[0].explanation == ("attended: set by ada@example.com (joined by phone); the evidence said: "
                                     "present 20 min = 33%; threshold 75%: not attended")
    assert result[2].explanation.endswith("the evidence said: no evidence for this learner")
    assert apply_overrides(decisions, []) == decisions
