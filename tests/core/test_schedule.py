"""Scheduling conflicts: the sweep finds exactly the overlapping pairs a brute-force check finds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from viltbridge.core.provider import HOST_ACCOUNT
from viltbridge.core.schedule import Booking, conflicts_with, find_conflicts, host_account_of

pytestmark = pytest.mark.pure
T0 = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)


def booking(session_id: str, start_min: int, minutes: int, *instructors: str, host: str | None = None,
            connection: str = "acme") -> Booking:
    start = T0 + timedelta(minutes=start_min)
    return Booking(connection, session_id, f"Class {session_id}", start, start + timedelta(minutes=minutes),
                   tuple(instructors), host)


def test_the_same_instructor_twice_across_connections_conflicts() -> None:
    first = booking("a", 0, 60, "Tess@Example.com", connection="acme-zoom")
    second = booking("b", 30, 60, "tess@example.com", connection="acme-teams")
    [conflict] = find_conflicts([first, second])
    assert conflict.reason == "instructor tess@example.com"
    assert "overlap by 30 min" in conflict.describe() and "acme-zoom/a" in conflict.describe()


def test_back_to_back_classes_do_not_conflict() -> None:
    assert find_conflicts([booking("a", 0, 60, "tess@example.com"), booking("b", 60, 60, "tess@example.com")]) == []


def test_a_shared_host_account_conflicts_even_with_different_instructors() -> None:
    first = booking("a", 0, 60, "tess@example.com", host="zoom:acct:host-1")
    second = booking("b", 10, 20, "cole@example.com", host="zoom:acct:host-1")
    assert [c.reason for c in find_conflicts([first, second])] == ["host account zoom:acct:host-1"]


def test_conflicts_with_one_booking() -> None:
    target = booking("new", 0, 60, "tess@example.com")
    others = [booking("x", 30, 60, "tess@example.com"), booking("y", 15, 10, "cole@example.com"),
              booking("z", 45, 30, "cole@example.com")]
    assert [(c.first.session_id, c.second.session_id) for c in conflicts_with(target, others)] == [("new", "x")]


people = st.sampled_from(["ann@x.org", "bob@x.org", "cy@x.org"])
bookings = st.lists(st.builds(lambda n, s, m, who, host: booking(str(n), s, m, *who, host=host),
                              st.integers(0, 10_000), st.integers(0, 600), st.integers(0, 180),
                              st.lists(people, max_size=2), st.sampled_from([None, "h1", "h2"])),
                    max_size=12, unique_by=lambda b: b.session_id)


@given(bookings)
def test_the_sweep_finds_what_checking_every_pair_finds(items: list[Booking]) -> None:
    def resources(b: Booking) -> set[str]:
        return {f"instructor {e}" for e in b.instructors} | ({f"host account {b.host_account}"}
                                                            if b.host_account else set())

    expected = {(frozenset((a.session_id, b.session_id)), shared)
                for i, a in enumerate(items) for b in items[i + 1:]
                if a.starts_at < b.ends_at and b.starts_at < a.ends_at
                for shared in resources(a) & resources(b)}
    found = [(frozenset((c.first.session_id, c.second.session_id)), c.reason) for c in find_conflicts(items)]
    assert len(found) == len(set(found))  # each pair and resource once
    assert set(found) == expected


def test_a_stored_meeting_names_its_host_account_with_its_provider() -> None:
    assert host_account_of("zoom", {HOST_ACCOUNT: "KDcuGIm1QgePTO8WbOqwIQ", "uuid": "x"}) == (
        "zoom:KDcuGIm1QgePTO8WbOqwIQ")
    assert host_account_of("bbb", {"create": {}}) is None  # no host accounts at BBB
    assert host_account_of(None, None) is None
