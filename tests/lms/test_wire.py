"""The envelope's own renderings are the ones Starlette and the spec define, byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.responses import JSONResponse

from viltbridge.lms.cornerstone.wire import EnvelopeResponse, timestamp

pytestmark = pytest.mark.pure

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(content=json_values)
def test_an_envelope_renders_as_starlettes_json_response(content: object) -> None:
    assert EnvelopeResponse(content).body == JSONResponse(content).body


def test_an_envelope_refuses_what_json_response_refuses() -> None:
    with pytest.raises(ValueError):
        EnvelopeResponse({"x": float("nan")})


@settings(max_examples=300, deadline=None)
@given(moment=st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9998, 12, 31),
                           timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)),
                                                      timezone(timedelta(hours=5, minutes=30))])))
def test_a_timestamp_is_utc_to_the_millisecond_as_the_spec_shows(moment: datetime) -> None:
    utc = moment.astimezone(UTC)
    expected = f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}+00:00"
    assert timestamp(moment) == expected
