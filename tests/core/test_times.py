"""LMS dates, UTC offsets in every spelling the contract accepts, and the IANA-zone guess."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from viltbridge.core.errors import InvalidInput
from viltbridge.core.times import format_offset, guess_zone, parse_lms_datetime, parse_utc_offset

pytestmark = pytest.mark.pure

CHEAP = settings(max_examples=200, deadline=None)
MIN_OFFSET, MAX_OFFSET = -12 * 60, 14 * 60
ACCEPTED_FORMS = ("-05:00", "-0500", "-5", "UTC-05:00", "GMT+5:30", "Eastern Time")


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def _offset_minutes(zone: str, at: datetime) -> float:
    offset = at.astimezone(ZoneInfo(zone)).utcoffset()
    assert offset is not None
    return offset.total_seconds() / 60


def _refused_offset(value: object) -> str:
    with pytest.raises(InvalidInput) as caught:
        parse_utc_offset(value)
    message = caught.value.message
    assert "TimeZone.UTCOffset" in message
    return message


# --- parse_lms_datetime -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T14:00:00", _utc(2026, 3, 1, 14)),  # the spec's form: naive means UTC
        ("2026-03-01T14:00:00Z", _utc(2026, 3, 1, 14)),
        ("2026-03-01T14:00:00z", _utc(2026, 3, 1, 14)),
        ("2026-03-01T14:00:00+00:00", _utc(2026, 3, 1, 14)),
        ("2026-03-01T09:00:00-05:00", _utc(2026, 3, 1, 14)),
        ("2026-03-01T19:30:00+05:30", _utc(2026, 3, 1, 14)),
        ("2026-03-01T01:00:00+11:00", _utc(2026, 2, 28, 14)),  # converting crosses a day (and month) boundary
        ("2026-03-01T14:00:00.5", _utc(2026, 3, 1, 14, 0, 0, 500000)),
        ("2026-03-01T14:00:00.123Z", _utc(2026, 3, 1, 14, 0, 0, 123000)),
        ("2026-03-01T14:00:00.123456-01:00", _utc(2026, 3, 1, 15, 0, 0, 123456)),
        ("  2026-03-01T14:00:00  ", _utc(2026, 3, 1, 14)),
    ],
)
def test_lms_dates_are_parsed_as_utc(text: str, expected: datetime) -> None:
    parsed = parse_lms_datetime(text, field="DateBegin")
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@CHEAP
@given(moment=st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 12, 31, 23, 59)))
def test_naive_dates_are_utc_wall_time(moment: datetime) -> None:
    assert parse_lms_datetime(moment.isoformat(), field="DateBegin") == moment.replace(tzinfo=UTC)
    whole = moment.replace(microsecond=0)
    assert parse_lms_datetime(whole.strftime("%Y-%m-%dT%H:%M:%S"), field="DateBegin") == whole.replace(tzinfo=UTC)


@CHEAP
@given(moment=st.datetimes(timezones=st.timezones() | st.builds(
    lambda m: timezone(timedelta(minutes=m)), st.integers(-23 * 60 - 59, 23 * 60 + 59))))
def test_explicit_offsets_are_converted_to_utc(moment: datetime) -> None:
    text = moment.isoformat()
    try:
        expected = moment.astimezone(UTC)
    except OverflowError:  # the instant is outside what a datetime can hold in UTC
        expected = None
    if expected is None or not 1970 <= expected.year <= 2200:  # refused: no real class is there
        with pytest.raises(InvalidInput) as caught:
            parse_lms_datetime(text, field="DateEnd")
        assert "DateEnd" in caught.value.message
        return
    parsed = parse_lms_datetime(text, field="DateEnd")
    assert parsed == expected
    assert parsed.tzinfo == UTC


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", 20260301, "tomorrow", "2026-13-01T00:00:00", "2026-02-30T10:00:00", "2026-03-01T25:00:00",
     "01/03/2026 14:00", "2026-03-01T14:00:00+25:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+01:00"],
)
def test_garbage_dates_are_refused_naming_the_field(value: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_lms_datetime(value, field="DateBegin")
    message = caught.value.message
    assert "DateBegin" in message
    assert "YYYY-MM-DDTHH:MM:SS" in message


@CHEAP
@given(text=st.text(max_size=40))
def test_date_parser_fails_only_with_invalid_input(text: str) -> None:
    try:
        parsed = parse_lms_datetime(text, field="DateBegin")
    except InvalidInput as exc:
        assert "DateBegin" in exc.message
    else:
        assert parsed.utcoffset() == timedelta(0)


# --- parse_utc_offset -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "minutes"),
    [
        ("-05:00", -300),
        ("-0500", -300),
        ("-5", -300),
        ("-05", -300),
        ("UTC-05:00", -300),
        ("utc-5", -300),
        ("UTC -05:00", -300),
        ("GMT+5:30", 330),
        ("GMT+05:30", 330),
        ("+0530", 330),
        ("(UTC-05:00) Eastern Time (US & Canada)", -300),
        ("(UTC+05:30) Chennai, Kolkata, Mumbai, New Delhi", 330),
        ("(GMT+01:00) Amsterdam, Berlin", 60),
        ("\u221205:00", -300),  # a typographic minus sign
        ("+9", 540),
        ("9", 540),
        ("+05:45", 345),
        ("UTC", 0),
        ("utc", 0),
        ("GMT", 0),
        ("Z", 0),
        ("(UTC) Coordinated Universal Time", 0),
        ("+00:00", 0),
        ("-00:00", 0),
        ("UTC+00:00", 0),
        ("0", 0),
        ("-12:00", MIN_OFFSET),
        ("+14:00", MAX_OFFSET),
        ("  -05:00  ", -300),
    ],
)
def test_accepted_offset_spellings(value: str, minutes: int) -> None:
    assert parse_utc_offset(value) == minutes


@pytest.mark.parametrize(
    ("value", "minutes"),
    [(-5, -300), (5.5, 330), (-3.5, -210), (0, 0), (0.0, 0), (-5.0, -300), (5.75, 345), (-12, MIN_OFFSET), (14, 840)],
)
def test_numeric_offsets_are_hours(value: float, minutes: int) -> None:
    assert parse_utc_offset(value) == minutes


@pytest.mark.parametrize(
    "value",
    ["abc", "Eastern Standard Time", "America/New_York", "Zagreb", "GMTfoo", "Zebra", "UTC+", "--05:00",
     "-05:0", "+5:3", "1:2:3", "12345", "(UTC) Offset 5", "+05:00:00", "five", "5.5h"],
)
def test_garbage_offsets_are_refused_listing_accepted_forms(value: str) -> None:
    message = _refused_offset(value)
    assert value in message
    for form in ACCEPTED_FORMS:
        assert form in message, message


@pytest.mark.parametrize("value", [None, "", "   ", True, False, [], {}, ["-05:00"]])
def test_missing_or_wrongly_typed_offsets_are_refused(value: object) -> None:
    message = _refused_offset(value)
    for form in ACCEPTED_FORMS:
        assert form in message, message


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), 10**400])
def test_non_finite_numbers_are_refused(value: float) -> None:
    _refused_offset(value)


@pytest.mark.parametrize(
    "value",
    ["-12:01", "+14:01", "-13", "+15", "UTC+14:30", "GMT-12:30", "-99", "+99:00", -13, 14.5, -12.5, 100, "-05:60",
     "+05:99"],
)
def test_out_of_range_offsets_are_refused_listing_accepted_forms(value: object) -> None:
    message = _refused_offset(value)
    for form in ACCEPTED_FORMS:
        assert form in message, message


@pytest.mark.parametrize("value", ["-12:01", "+14:01", -13, 14.5])
def test_out_of_range_message_states_the_range(value: object) -> None:
    message = _refused_offset(value)
    assert "UTC-12:00" in message and "UTC+14:00" in message


def test_bad_minutes_message_says_what_is_wrong() -> None:
    assert "below 60" in _refused_offset("-05:75")


def _spellings() -> list[Callable[[int], object]]:
    def hours_minutes(m: int, sep: str = ":", prefix: str = "") -> str:
        sign = "-" if m < 0 else "+"
        h, mm = divmod(abs(m), 60)
        return f"{prefix}{sign}{h:02d}{sep}{mm:02d}"

    def short(m: int) -> str:  # GMT+5:30, UTC-5 (only whole hours drop the minutes)
        sign = "-" if m < 0 else "+"
        h, mm = divmod(abs(m), 60)
        return f"GMT{sign}{h}:{mm:02d}" if mm else f"UTC{sign}{h}"

    return [
        format_offset,
        lambda m: hours_minutes(m, sep=""),  # -0530
        lambda m: hours_minutes(m, prefix="UTC"),
        lambda m: hours_minutes(m, prefix="gmt "),
        lambda m: f"({hours_minutes(m, prefix='UTC')}) Some Place, Other Place",
        lambda m: hours_minutes(m).replace("-", "\u2212"),
        short,
        lambda m: m / 60,  # a JSON number of hours
    ]


@CHEAP
@given(minutes=st.integers(MIN_OFFSET, MAX_OFFSET))
def test_format_offset_round_trips(minutes: int) -> None:
    assert parse_utc_offset(format_offset(minutes)) == minutes


@CHEAP
@given(minutes=st.integers(MIN_OFFSET, MAX_OFFSET), spelling=st.sampled_from(_spellings()))
def test_every_accepted_spelling_round_trips(minutes: int, spelling: Callable[[int], object]) -> None:
    assert parse_utc_offset(spelling(minutes)) == minutes


@CHEAP
@given(minutes=st.integers(-30 * 60, 30 * 60).filter(lambda m: not MIN_OFFSET <= m <= MAX_OFFSET),
       spelling=st.sampled_from(_spellings()))
def test_every_spelling_out_of_range_is_refused(minutes: int, spelling: Callable[[int], object]) -> None:
    _refused_offset(spelling(minutes))


@CHEAP
@given(value=st.text(max_size=30) | st.floats() | st.integers())
def test_offset_parser_returns_in_range_minutes_or_invalid_input(value: object) -> None:
    try:
        minutes = parse_utc_offset(value)
    except InvalidInput:
        return
    assert MIN_OFFSET <= minutes <= MAX_OFFSET


# --- guess_zone ------------------------------------------------------------------------------------------------

ZONES = sorted(zone for zone in available_timezones() if "/" in zone)
JAN, JUL = _utc(2026, 1, 15, 12), _utc(2026, 7, 15, 12)


@settings(max_examples=200, deadline=None)
@given(zone=st.sampled_from(ZONES),
       instant=st.datetimes(min_value=datetime(1975, 1, 1), max_value=datetime(2037, 12, 31), timezones=st.just(UTC)))
def test_guessed_zone_has_the_offset_at_that_instant(zone: str, instant: datetime) -> None:
    minutes = _offset_minutes(zone, instant)
    assume(minutes == int(minutes))
    guess = guess_zone(int(minutes), instant)
    assert _offset_minutes(guess, instant) == minutes, guess


@settings(max_examples=60, deadline=None)
@given(hours=st.integers(-12, 14),
       instant=st.datetimes(min_value=datetime(1975, 1, 1), max_value=datetime(2037, 12, 31), timezones=st.just(UTC)))
def test_whole_hour_offsets_always_get_a_zone_with_that_offset(hours: int, instant: datetime) -> None:
    guess = guess_zone(hours * 60, instant)
    assert _offset_minutes(guess, instant) == hours * 60, guess


@settings(max_examples=20, deadline=None)
@given(minutes=st.integers(MIN_OFFSET, MAX_OFFSET))
def test_guess_is_always_a_loadable_zone(minutes: int) -> None:
    ZoneInfo(guess_zone(minutes, JAN))


@pytest.mark.parametrize(
    ("minutes", "at", "zone"),
    [
        (-300, JAN, "America/New_York"),
        (-240, JUL, "America/New_York"),
        (-300, JUL, "America/Chicago"),
        (-360, JAN, "America/Chicago"),
        (-480, JAN, "America/Los_Angeles"),
        (0, JAN, "Europe/London"),
        (60, JUL, "Europe/London"),
        (60, JAN, "Europe/Paris"),
        (120, JUL, "Europe/Paris"),
        (330, JAN, "Asia/Kolkata"),
        (330, JUL, "Asia/Kolkata"),
        (345, JAN, "Asia/Kathmandu"),
        (540, JAN, "Asia/Tokyo"),
        (660, JAN, "Australia/Sydney"),
        (600, JUL, "Australia/Sydney"),
        (-12 * 60, JAN, "Etc/GMT+12"),  # no inhabited zone is at -12; POSIX inverts the sign
    ],
)
def test_zone_examples(minutes: int, at: datetime, zone: str) -> None:
    assert guess_zone(minutes, at) == zone
    assert _offset_minutes(zone, at) == minutes


def test_plus_one_in_january_is_a_european_zone() -> None:
    assert guess_zone(60, JAN).startswith("Europe/")


def test_instant_in_another_zone_is_the_same_instant() -> None:
    local = datetime(2026, 7, 15, 8, 0, tzinfo=ZoneInfo("America/New_York"))
    assert guess_zone(-240, local) == "America/New_York"
    assert guess_zone(-300, local) == "America/Chicago"


SECOND = timedelta(seconds=1)
US_SPRING, US_FALL = _utc(2026, 3, 8, 7), _utc(2026, 11, 1, 6)  # 02:00 local in New York
EU_SPRING, EU_FALL = _utc(2026, 3, 29, 1), _utc(2026, 10, 25, 1)  # 01:00 UTC across the EU


@pytest.mark.parametrize(
    ("zone", "switch", "before", "after"),
    [
        ("America/New_York", US_SPRING, -300, -240),
        ("America/New_York", US_FALL, -240, -300),
        ("Europe/Paris", EU_SPRING, 60, 120),
        ("Europe/Paris", EU_FALL, 120, 60),
        ("Europe/London", EU_SPRING, 0, 60),
        ("Europe/London", EU_FALL, 60, 0),
    ],
)
def test_dst_switches_2026(zone: str, switch: datetime, before: int, after: int) -> None:
    # The tz database agrees with the dates above: the zone really switches at `switch`.
    assert _offset_minutes(zone, switch - SECOND) == before
    assert _offset_minutes(zone, switch) == after
    assert guess_zone(before, switch - SECOND) == zone
    assert guess_zone(after, switch) == zone
    # The offset the zone has just left still gets a zone that has it at that instant.
    for minutes, at in ((after, switch - SECOND), (before, switch)):
        assert _offset_minutes(guess_zone(minutes, at), at) == minutes


def test_standard_offset_just_after_us_spring_switch_is_not_new_york() -> None:
    guess = guess_zone(-300, US_SPRING)
    assert guess != "America/New_York"
    assert _offset_minutes(guess, US_SPRING) == -300


@pytest.mark.parametrize("text", ["9999-12-31T22:00:00", "0001-01-01T10:00:00", "1969-12-31T23:59:59",
                                  "2201-01-01T00:00:00", "9999-12-31T23:59:59-01:00"])
def test_dates_outside_any_real_class_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_lms_datetime(text, field="DateBegin")
    assert "1970-2200" in caught.value.message
