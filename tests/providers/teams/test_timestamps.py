"""Graph's timestamps: up to seven fractional digits, which Python's datetime (microseconds) cannot hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from viltbridge.providers.teams.client import graph_time, parse_graph_time
from viltbridge.providers.teams.simulator.state import graph_timestamp

pytestmark = pytest.mark.pure

moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@given(moments, st.integers(min_value=0, max_value=9))
def test_the_seventh_digit_is_dropped_and_nothing_else(moment: datetime, tick: int) -> None:
    text = graph_timestamp(moment, tick)
    assert len(text.split(".")[1]) == 8  # seven digits and the Z
    assert parse_graph_time(text) == moment


@given(moments)
def test_what_we_write_reads_back(moment: datetime) -> None:
    assert parse_graph_time(graph_time(moment)) == moment


@given(moments, st.integers(min_value=0, max_value=6))
def test_fewer_digits_and_offsets_read_the_same(moment: datetime, digits: int) -> None:
    moment = moment.replace(microsecond=moment.microsecond // 10 ** (6 - digits) * 10 ** (6 - digits))
    fraction = f".{moment.microsecond:06d}"[: digits + 1] if digits else ""
    local = moment.astimezone(UTC) + timedelta(hours=2)
    assert parse_graph_time(f"{moment:%Y-%m-%dT%H:%M:%S}{fraction}Z") == moment
    assert parse_graph_time(f"{local:%Y-%m-%dT%H:%M:%S}{fraction}+02:00") == moment
    assert parse_graph_time(f"{moment:%Y-%m-%dT%H:%M:%S}{fraction}") == moment  # no zone: UTC


def test_empty_and_broken_values() -> None:
    assert parse_graph_time(None) is None and parse_graph_time("") is None
    with pytest.raises(ValueError, match="not a Graph timestamp"):
        parse_graph_time("02/03/2026 09:00")
